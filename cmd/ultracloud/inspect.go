package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/image"
	"github.com/photoncloud/testkit/ultracloud/image/iso"
)

func newInspect() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Read ISO and disk images in-process (no mounts, no loop devices)",
	}
	cmd.AddCommand(newInspectISO(), newInspectDisk())
	return cmd
}

func newInspectISO() *cobra.Command {
	var asJSON bool
	var cat string
	cmd := &cobra.Command{
		Use:   "iso FILE",
		Short: "List an ISO's volume id, El Torito boot entries and files",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := iso.Open(args[0])
			if err != nil {
				return err
			}
			defer img.Close()
			out := cmd.OutOrStdout()
			if cat != "" {
				data, err := img.ReadFile(cat)
				if err != nil {
					return err
				}
				_, err = out.Write(data)
				return err
			}
			files, err := img.Walk()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, struct {
					*iso.Image
					Files []string `json:"files"`
				}{img, files})
			}
			fmt.Fprintf(out, "%s: volume %q, %d bytes\n", img.Path, img.VolumeID, img.Size)
			for _, e := range img.BootEntries {
				fmt.Fprintf(out, "  boot entry: platform %s, bootable %v, emulation %d, sector %d, load sectors %d\n",
					e.Platform, e.Bootable, e.Emulation, e.LBA, e.Sectors)
			}
			for _, f := range files {
				fmt.Fprintln(out, "  "+f)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&cat, "cat", "", "print the contents of this file instead")
	return cmd
}

func newInspectDisk() *cobra.Command {
	var planPath, list, cat string
	var part int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "disk FILE",
		Short: "Print a disk image's GPT and filesystems; with --plan, verify it against a disko plan",
		Long: `disk reads a raw disk image (or block device) in-process. With --plan PLAN.json (disko's
JSON, from nix eval --json .#nixosConfigurations.HOST.config.disko.devices) it prints the
differences and exits 1 when the image does not match.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := image.OpenDisk(args[0])
			if err != nil {
				return err
			}
			defer d.Close()
			out := cmd.OutOrStdout()
			switch {
			case cat != "":
				data, err := d.ReadFile(part, cat)
				if err != nil {
					return err
				}
				_, err = out.Write(data)
				return err
			case list != "":
				ents, err := d.ReadDir(part, list)
				if err != nil {
					return err
				}
				for _, e := range ents {
					suffix := ""
					if e.IsDir() {
						suffix = "/"
					}
					fmt.Fprintln(out, e.Name()+suffix)
				}
				return nil
			}
			if asJSON && planPath == "" {
				return writeJSON(out, d)
			}
			fmt.Fprintf(out, "%s: %s\n", d.Path, ultracloud.Size(d.Size))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tNAME\tSTART\tEND\tSIZE\tFS\tLABEL\tTYPE")
			for _, p := range d.Partitions {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Index, p.Name, p.FirstLBA, p.LastLBA,
					ultracloud.Size(int64(p.LastLBA-p.FirstLBA+1)*512), p.FS.Type, p.FS.Label, p.TypeGUID)
			}
			tw.Flush()
			if planPath == "" {
				return nil
			}
			data, err := os.ReadFile(planPath)
			if err != nil {
				return err
			}
			plan, err := bootstrap.ParsePlan(data)
			if err != nil {
				return err
			}
			if len(plan.Disks) != 1 {
				return fmt.Errorf("--plan %s has %d disks; inspect disk verifies one (use the SDK for more)", planPath, len(plan.Disks))
			}
			diff, err := plan.Verify(cmd.Context(), map[string]string{plan.Disks[0].Name: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintln(out, diff.String())
			if len(diff) > 0 {
				return &exitError{code: 1, err: errors.New("image does not match the plan")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&planPath, "plan", "", "disko plan JSON to verify the image against")
	cmd.Flags().IntVar(&part, "part", 1, "partition for --ls and --cat")
	cmd.Flags().StringVar(&list, "ls", "", "list this directory of --part (vfat, ext4)")
	cmd.Flags().StringVar(&cat, "cat", "", "print this file of --part (vfat, ext4)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDisko() *cobra.Command {
	cmd := &cobra.Command{Use: "disko", Short: "Work with disko plans without touching disks"}
	var diskSize string
	layout := &cobra.Command{
		Use:     "layout PLAN.json",
		Short:   "Print where each partition lands (sgdisk's rules) on a disk of --disk-size",
		Example: "  ultracloud disko layout plan.json --disk-size 20G",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			plan, err := bootstrap.ParsePlan(data)
			if err != nil {
				return err
			}
			// Geometry does not depend on what the partitions hold: lay out
			// every GPT disk, and list what cannot be applied in-process.
			unsupported := plan.Unsupported
			plan.Unsupported = nil
			if err := plan.Validate(false); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, d := range plan.Disks {
				if d.Table != "gpt" {
					fmt.Fprintf(out, "disk %s (%s): %s table, not laid out here\n", d.Name, d.Device, d.Table)
					continue
				}
				size := d.ImageSize
				what := "imageSize, the size of an image disko builds; --disk-size for a real disk"
				if diskSize != "" {
					if size, err = ultracloud.ParseSize(diskSize); err != nil {
						return fmt.Errorf("--disk-size: %w", err)
					}
					what = "--disk-size"
				}
				if size == 0 {
					return fmt.Errorf("disk %q has no imageSize; pass --disk-size (e.g. 20G)", d.Name)
				}
				fmt.Fprintf(out, "disk %s (%s, %s from %s)\n", d.Name, d.Device, size, what)
				ext, err := d.Layout(int64(size))
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "#\tNAME\tLABEL\tFIRST\tLAST\tSIZE\tCONTENT")
				for i, e := range ext {
					c := d.Partitions[i].Content
					desc := ""
					if c != nil {
						desc = c.Type
						if c.Format != "" {
							desc += " " + c.Format
						}
						if c.Mountpoint != "" {
							desc += " " + c.Mountpoint
						}
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", e.Index, e.Name, e.Label, e.FirstLBA, e.LastLBA, ultracloud.Size(e.Bytes()), desc)
				}
				tw.Flush()
			}
			for _, n := range plan.Nodev {
				fmt.Fprintf(out, "nodev %s: %s on %s (no disk; the installed system mounts it)\n", n.Name, n.FSType, n.Mountpoint)
			}
			for _, u := range unsupported {
				fmt.Fprintf(out, "%s (real images run real disko; Apply refuses it)\n", u)
			}
			return nil
		},
	}
	layout.Flags().StringVar(&diskSize, "disk-size", "", "disk size (e.g. 20G); default: the plan's imageSize")
	cmd.AddCommand(layout, newDiskoFromFlake(), newDiskoApplyExpr())
	return cmd
}

// newDiskoFromFlake is `ultracloud disko from-flake FLAKE#HOST`: the
// host's evaluated disko devices as JSON ParsePlan reads, with real nix.
func newDiskoFromFlake() *cobra.Command {
	var out, nix string
	cmd := &cobra.Command{
		Use:   "from-flake FLAKE#HOST",
		Short: "Print a NixOS host's disko plan as JSON (nix eval with the apply expression that drops disko's functions)",
		Long: `from-flake evaluates FLAKE#nixosConfigurations.HOST.config.disko.devices with real
nix, applying the expression of "ultracloud disko apply-expr" (plain nix eval --json
fails on disko's function-valued attributes), checks that the result parses as a
disko plan and prints it (or writes it to -o).`,
		Example: `  ultracloud disko from-flake .#node01 -o node01-disko.json
  examples/baremetal-iso -plan node01=node01-disko.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flake, host, ok := strings.Cut(args[0], "#")
			if !ok || flake == "" || host == "" {
				return fmt.Errorf("%q: want FLAKE#HOST, e.g. .#node01", args[0])
			}
			var json string
			ev := checks.NixEval{Flake: flake, Attr: "nixosConfigurations." + host + ".config.disko.devices",
				Nix: nix, JSON: true, Apply: bootstrap.DiskoJSONApply, Output: &json}
			if err := ev.Run(cmd.Context()); err != nil {
				return err
			}
			plan, err := bootstrap.ParsePlan([]byte(json))
			if err != nil {
				return fmt.Errorf("%s evaluated, but is not a disko plan: %w", args[0], err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d disks, %d unsupported, %d nodev\n", args[0], len(plan.Disks), len(plan.Unsupported), len(plan.Nodev))
			if out == "" {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(json))
				return err
			}
			return os.WriteFile(out, []byte(strings.TrimSpace(json)+"\n"), 0o644)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the plan to this file")
	cmd.Flags().StringVar(&nix, "nix", "", "nix binary (default nix)")
	return cmd
}

// newDiskoApplyExpr prints bootstrap.DiskoJSONApply for use with nix eval.
func newDiskoApplyExpr() *cobra.Command {
	return &cobra.Command{
		Use:     "apply-expr",
		Short:   "Print the --apply expression that makes `nix eval --json …config.disko.devices` work",
		Example: `  nix eval --json .#nixosConfigurations.node01.config.disko.devices --apply "$(ultracloud disko apply-expr)"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), bootstrap.DiskoJSONApply)
			return err
		},
	}
}
