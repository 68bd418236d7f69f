package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// clusterLaneFlags are the flags every lane verb on the running cluster
// shares (smoke, demo-vm-webapp and their fresh- variants).
type clusterLaneFlags struct {
	dir, workDir, accel string
	verbose, json       bool
	timeout             time.Duration
}

func (f *clusterLaneFlags) add(cmd *cobra.Command, lane string, fresh bool) {
	stateFlag(cmd, &f.dir)
	cmd.Flags().StringVar(&f.workDir, "work-dir", "", "where the report goes (default ultracloud-work/"+lane+")")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log every step")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the report as JSON")
	if fresh {
		cmd.Flags().StringVar(&f.accel, "accel", "", "force an accelerator: kvm, tcg or auto")
		cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Minute, "how long to wait for every node")
	} else {
		cmd.Flags().StringVar(&f.accel, "accel", "", "the accelerator the cluster was started with (default: probed)")
	}
}

// fresh is `cluster fresh-<lane>`: clean, start the fresh cluster, then
// run the lane on it.
func (f *clusterLaneFlags) fresh(cmd *cobra.Command, then func() error) error {
	ctx := cmd.Context()
	if err := cluster.Clean(ctx, f.dir); err != nil {
		return err
	}
	start := newStart()
	start.SetContext(ctx)
	start.SetOut(cmd.OutOrStdout())
	start.SetErr(cmd.ErrOrStderr())
	args := []string{"--state", f.dir, "--timeout", f.timeout.String()}
	if f.accel != "" {
		args = append(args, "--accel", f.accel)
	}
	if err := start.ParseFlags(args); err != nil {
		return err
	}
	if err := start.RunE(start, nil); err != nil {
		return err
	}
	return then()
}

// run runs lane on the running cluster of f.dir, admitted as `cluster
// start` admits it, and prints (or exits with) its result.
func (f *clusterLaneFlags) run(cmd *cobra.Command, lane string, laneFn func(context.Context, ultracloud.RunConfig, *cluster.Client) (*ultracloud.Report, error)) error {
	cl, err := openCluster(f.dir)
	if err != nil {
		return err
	}
	host, err := preflight(cmd.Context(), f.accel)
	if err != nil {
		return err
	}
	host, err = lanes.AdmitKVMRequired(lane, host, lanes.RealImages(cl.Topology(), lanes.DriverOptions{}), f.accel != "" || os.Getenv(vm.EnvAccel) != "")
	if err != nil {
		return &exitError{code: lanes.ExitCouldNotRun, err: err}
	}
	if !cl.Alive() {
		return &exitError{code: lanes.ExitCouldNotRun, err: fmt.Errorf("the cluster in %s is not running; run `ultracloud cluster start --state %s`", f.dir, f.dir)}
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	work := f.workDir
	if work == "" {
		work = filepath.Join("ultracloud-work", lane)
	}
	stderr := cmd.ErrOrStderr()
	cfg := ultracloud.RunConfig{Host: host, WorkDir: work, Progress: stderr,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	r, err := laneFn(cmd.Context(), cfg, cl)
	if err != nil {
		return &exitError{code: lanes.ExitCouldNotRun, err: err}
	}
	out := cmd.OutOrStdout()
	if f.json {
		r.WriteJSON(out)
	} else {
		abs, _ := filepath.Abs(work)
		fmt.Fprintf(out, "\nlane %s: %s in %s; steps: %s (accelerator %s)\n", lane, r.Status, r.Finished.Sub(r.Started).Round(time.Second), r.Counts(), r.Host.Accelerator)
		if r.Status != ultracloud.StatusPass {
			fmt.Fprintf(out, "reason: %s\n", r.Reason)
		}
		fmt.Fprintf(out, "report:   %s\nthe cluster keeps running: `ultracloud cluster status --state %s`, `logs NODE`, `ssh NODE`, `clean`\n", filepath.Join(abs, "report", "report.json"), f.dir)
	}
	if code := lanes.ExitCode(r); code != 0 {
		return &exitError{code: code, err: fmt.Errorf("%s: %s: %s", lane, r.Status, r.Reason)}
	}
	return nil
}
