package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// laneVerb runs a registered lane through lanes.Main: the same flags,
// output and exit codes as examples/<lane> and the flake checks.
func laneVerb(use, lane, short string) *cobra.Command {
	return &cobra.Command{
		Use:                use + " [flags]",
		Short:              short,
		DisableFlagParsing: true, // lanes.Main parses the drivers' flags
		RunE: func(cmd *cobra.Command, args []string) error {
			code := lanes.Main(cmd.Context(), lane, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if code != lanes.ExitPass {
				return &exitError{code: code, err: errors.New(exitMeaning(lane, code)), quiet: true}
			}
			return nil
		},
	}
}

func exitMeaning(lane string, code int) string {
	switch code {
	case lanes.ExitFail:
		return "lane " + lane + " failed"
	case lanes.ExitIncomplete:
		return "lane " + lane + " incomplete (steps skipped)"
	case lanes.ExitCouldNotRun:
		return "lane " + lane + " could not run"
	}
	return fmt.Sprintf("lane %s exited %d", lane, code)
}

// laneVerbs are `cluster <lane>` for every registered lane.
func laneVerbs() []*cobra.Command {
	reg, err := lanes.Registry()
	if err != nil {
		panic(err) // the built-in registry is valid (tested)
	}
	var out []*cobra.Command
	for _, l := range reg.Lanes() {
		if !onTheCluster(l.Name) {
			out = append(out, laneVerb(l.Name, l.Name, l.Summary))
		}
	}
	return out
}

// onTheCluster reports the lanes whose `cluster <lane>` verb runs on the
// long-lived cluster (an operational verb: clean, start, run, leave it
// running) rather than the lane's own driver, which boots and stops its
// machines (examples/<lane>, the flake check).
func onTheCluster(lane string) bool {
	return lane == "fresh-smoke" || lane == "fresh-demo-vm-webapp" || lane == "fresh-bench-storage" || lane == "publishable-kvm-suite" ||
		lane == "fresh-matrix"
}

// newQuickstart is `ultracloud quickstart`: single-node-quickstart through
// the same driver (ULTRACLOUD_QUICKSTART_KEEP_VM=1 or -keep-vms keeps the VM
// and opens a shell in it).
func newQuickstart() *cobra.Command {
	return laneVerb("quickstart", "single-node-quickstart",
		"The one-box quickstart (nix run .#single-node-quickstart) on the fixture guest; "+lanes.EnvKeepQuickstartVM+"=1 keeps the VM")
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
