package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// laneCommand runs a registered lane as a CLI verb.
func laneCommand(use, laneName, short string) *cobra.Command {
	var workDir, junit string
	var keep, verbose bool
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
			host, err := vm.Preflight(cmd.Context())
			if err != nil {
				return err
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			cfg := ultracloud.RunConfig{Host: host, KeepVMs: keep, Progress: os.Stderr,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))}
			r, err := lanes.Run(cmd.Context(), lane, cfg, lanes.RunOptions{WorkDir: workDir, JUnitOut: junit, Out: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			if !r.Passed() {
				return &exitError{code: 1, err: errors.New("lane " + laneName + " failed: " + firstLine(r.Reason))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&workDir, "work-dir", "", "run directory (default ./ultracloud-work/"+laneName+")")
	cmd.Flags().StringVar(&junit, "junit-dir", "", "also write junit.xml here (e.g. $out)")
	cmd.Flags().BoolVar(&keep, "keep-vms", false, "leave machines running after the lane")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every step")
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
