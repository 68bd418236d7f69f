package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// newPublishable is `cluster publishable-kvm-suite DIR [--allow-tcg]`, the
// seed's run-publishable-kvm-suite.sh, through the lane's driver.
func newPublishable() *cobra.Command {
	return &cobra.Command{
		Use:   "publishable-kvm-suite DIR [-allow-tcg] [flags]",
		Short: "environment.json, then the publishable trio (fresh-smoke, fresh-demo-vm-webapp, …) into DIR; exit 2 at preflight without KVM unless -allow-tcg",
		Example: `  ultracloud cluster publishable-kvm-suite ./work/publishable-kvm-suite
  ultracloud cluster publishable-kvm-suite ./work/publishable-kvm-suite -allow-tcg`,
		DisableFlagParsing: true, // lanes.Main parses the driver's flags
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
				return &exitError{code: lanes.ExitCouldNotRun, err: errors.New("usage: ultracloud cluster publishable-kvm-suite DIR [-allow-tcg]: DIR receives environment.json, the report and junit.xml")}
			}
			const lane = "publishable-kvm-suite"
			code := lanes.Main(cmd.Context(), lane, lanes.PublishableArgs(args), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if code != lanes.ExitPass {
				return &exitError{code: code, err: errors.New(exitMeaning(lane, code)), quiet: true}
			}
			return nil
		},
	}
}
