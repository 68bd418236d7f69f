package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ultracloud",
		Short: "Run UltraCloud's validation lanes from Go",
		Long: `ultracloud runs UltraCloud's validation lanes (single-node-quickstart,
baremetal-iso, …) on real QEMU, on the embedded fixture guest or on NixOS images.

Start with:
  ultracloud env        what this host can run (KVM or TCG, QEMU, OVMF)
  ultracloud lanes      the lanes and the seed commands they replace
  ultracloud topology   the canonical topologies`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newProfiles(), newTopology(), newLanes(), newEnv(), newVersion(), newCluster(), newInspect(), newDisko(), newBench(),
		newQuickstart(), newPhoneHome())
	return root
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newProfiles() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "List the canonical profiles and their components",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps := ultracloud.Profiles()
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, ps)
			}
			for i, p := range ps {
				if i > 0 {
					fmt.Fprintln(out)
				}
				fmt.Fprintf(out, "%s\n  outputs:  %s\n  required: %s\n  optional: %s\n", p.Name,
					strings.Join(p.Outputs, ", "), componentList(p.Required), componentList(p.Optional))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func componentList(cs []ultracloud.Component) string {
	var parts []string
	for _, c := range cs {
		s := c.Name
		if c.Placement != ultracloud.OnEveryNode {
			s += " (" + string(c.Placement) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func newTopology() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "topology [NAME]",
		Short: "List the canonical topologies, or show one",
		Example: `  ultracloud topology
  ultracloud topology fresh-cluster --json > fresh.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				if asJSON {
					return writeJSON(out, ultracloud.Topologies())
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tPROFILE\tNODES")
				for _, t := range ultracloud.Topologies() {
					fmt.Fprintf(tw, "%s\t%s\t%d\n", t.Name, t.Profile, len(t.Nodes))
				}
				return tw.Flush()
			}
			t, err := ultracloud.LookupTopology(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, t)
			}
			fmt.Fprintf(out, "%s (profile %q)\n", t.Name, t.Profile)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tROLE\tVCPUS\tMEMORY\tFIRMWARE\tNICS\tCOMPONENTS")
			for _, n := range t.Nodes {
				var nics []string
				for _, nic := range n.NICs {
					nics = append(nics, nic.Network+"="+nic.MAC)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%dM\t%s\t%s\t%s\n", n.Name, n.Role, n.VCPUs, n.MemoryMiB,
					n.Firmware, strings.Join(nics, " "), strings.Join(n.Components, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (what `nix eval --json` would emit)")
	return cmd
}

func newLanes() *cobra.Command {
	return &cobra.Command{
		Use:   "lanes",
		Short: "List the lanes this release runs and the seed commands they replace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := lanes.Registry()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LANE\tNEEDS\tSEED COMMAND")
			for _, l := range reg.Lanes() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, l.Requires, l.SeedCommand)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			var missing []string
			for _, d := range lanes.Seed() {
				if _, err := reg.Lookup(d.Name); err != nil {
					missing = append(missing, d.Name)
				}
			}
			if len(reg.Names()) == 0 {
				fmt.Fprintln(out, "(no lane runs in this release yet)")
			}
			if len(missing) > 0 {
				fmt.Fprintf(out, "\nDocumented but not runnable yet: %s\n", strings.Join(missing, ", "))
			}
			return nil
		},
	}
}

func newEnv() *cobra.Command {
	var asJSON bool
	var accel string
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Host preflight: QEMU, OVMF, KVM usability and the accelerator lanes will use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opts []vm.PreflightOption
			if accel != "" {
				opts = append(opts, vm.WithAccel(ultracloud.Accel(accel)))
			}
			env, err := vm.Preflight(cmd.Context(), opts...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, env)
			}
			yn := map[bool]string{true: "yes", false: "no"}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "host\t%s (kernel %s), %d CPUs, %d MiB\n", env.Hostname, env.Kernel, env.CPUs, env.MemoryMiB)
			fmt.Fprintf(tw, "qemu\t%s\n", orMissing(env.QEMU, env.QEMUVersion))
			fmt.Fprintf(tw, "ovmf\t%s\n", orMissing(env.OVMFCode, env.OVMFVars))
			fmt.Fprintf(tw, "kvm present\t%s\n", yn[env.KVMPresent])
			fmt.Fprintf(tw, "kvm usable\t%s: %s\n", yn[env.KVMUsable], env.KVMReason)
			if env.Nested != "" {
				fmt.Fprintf(tw, "nested\t%s\n", env.Nested)
			}
			fmt.Fprintf(tw, "accelerator\t%s (%s)\n", env.Accelerator, env.AccelReason)
			for _, p := range env.Problems {
				fmt.Fprintf(tw, "problem\t%s\n", p)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&accel, "accel", "", "force an accelerator: kvm, tcg or auto (default: $"+vm.EnvAccel+", else auto)")
	return cmd
}

func orMissing(path, detail string) string {
	if path == "" {
		return "MISSING"
	}
	return path + "  " + detail
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the testkit version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v, goV := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				v, goV = bi.Main.Version, bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v += " " + s.Value
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ultracloud testkit %s %s\n", v, goV)
		},
	}
}

func newCluster() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster <verb>",
		Short: "The seed's `nix run ./nix/test-cluster#cluster -- <verb>` commands",
		Long: `cluster holds the verbs of the seed's nix/test-cluster that run in this
release (listed below); a verb appears here only once it runs for real.
"ultracloud lanes" lists the documented lanes that are not runnable yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(opsVerbs()...)
	cmd.AddCommand(laneVerbs()...)
	return cmd
}
