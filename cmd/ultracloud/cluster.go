package main

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// laneFlags are the flags every lane verb takes.
type laneFlags struct {
	workDir, junit string
	keep, verbose  bool
}

func (f *laneFlags) add(cmd *cobra.Command, laneName string) {
	cmd.Flags().StringVar(&f.workDir, "work-dir", "", "run directory (default ./ultracloud-work/"+laneName+")")
	cmd.Flags().StringVar(&f.junit, "junit-dir", "", "also write junit.xml here (e.g. $out)")
	cmd.Flags().BoolVar(&f.keep, "keep-vms", false, "leave machines running after the lane")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log every step")
}

// config runs preflight and returns the lane's run config.
func (f *laneFlags) config(cmd *cobra.Command) (ultracloud.RunConfig, error) {
	host, err := vm.Preflight(cmd.Context())
	if err != nil {
		return ultracloud.RunConfig{}, err
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	return ultracloud.RunConfig{Host: host, KeepVMs: f.keep, Progress: cmd.ErrOrStderr(),
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))}, nil
}

// laneExit turns a finished report into the command's result.
func laneExit(laneName string, r *ultracloud.Report) error {
	if code := lanes.ExitCode(r); code != lanes.ExitPass {
		return &exitError{code: code, err: errors.New("lane " + laneName + " " + string(r.Status) + ": " + firstLine(r.Reason))}
	}
	return nil
}

// newQuickstart is `ultracloud quickstart`: single-node-quickstart with the
// seed's ULTRACLOUD_QUICKSTART_KEEP_VM=1 (or --keep-vms) keeping the VM and
// opening a shell in it, as examples/single-node-quickstart does.
func newQuickstart() *cobra.Command {
	var f laneFlags
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "The one-box quickstart (nix run .#single-node-quickstart) on the fixture guest; " + lanes.EnvKeepQuickstartVM + "=1 keeps the VM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			r, err := lanes.RunQuickstart(cmd.Context(), cfg, lanes.RunOptions{WorkDir: f.workDir, JUnitOut: f.junit, Out: cmd.OutOrStdout()}, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return laneExit("single-node-quickstart", r)
		},
	}
	f.add(cmd, "single-node-quickstart")
	return cmd
}

// laneCommand runs a registered lane as a CLI verb.
func laneCommand(use, laneName, short string) *cobra.Command {
	var f laneFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := lanes.Registry()
			if err != nil {
				return err
			}
			lane, err := reg.Lookup(laneName)
			if err != nil {
				return err
			}
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			r, err := lanes.Run(cmd.Context(), lane, cfg, lanes.RunOptions{WorkDir: f.workDir, JUnitOut: f.junit, Out: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			return laneExit(laneName, r)
		},
	}
	f.add(cmd, laneName)
	return cmd
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
