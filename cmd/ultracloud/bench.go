package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func newBench() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Run a lane and print where its time went"}
	var workDir string
	bm := &cobra.Command{
		Use:   "baremetal-iso",
		Short: "Wall time, each node's critical path, and harness overhead of the baremetal-iso lane",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, err := vm.Preflight(cmd.Context())
			if err != nil {
				return err
			}
			cfg := ultracloud.RunConfig{Host: host, WorkDir: workDir, Logger: slog.New(slog.DiscardHandler)}
			if cfg.WorkDir == "" {
				cfg.WorkDir = "ultracloud-work/bench-baremetal-iso"
			}
			r, err := lanes.BaremetalISO(cmd.Context(), cfg, lanes.BaremetalOptions{})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "baremetal-iso %s (accelerator %s)\n%s", r.Status, host.Accelerator, lanes.TimingOf(r))
			if !r.Passed() {
				return &exitError{code: 1, err: fmt.Errorf("lane failed: %s", firstLine(r.Reason))}
			}
			return nil
		},
	}
	bm.Flags().StringVar(&workDir, "work-dir", "", "run directory")
	cmd.AddCommand(bm)
	return cmd
}
