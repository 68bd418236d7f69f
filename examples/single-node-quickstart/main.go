// Command single-node-quickstart runs `nix run .#single-node-quickstart` on
// the fixture guest: it boots the one-box topology and waits for chainfire,
// flaredb, iam, plasmavmc and prismnet from inside the guest. With
// ULTRACLOUD_QUICKSTART_KEEP_VM=1 (or -keep-vm) the VM stays up after a
// pass and you get a shell in it. Exit code: 0 passed, 1 failed, 2 could
// not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func main() {
	workDir := flag.String("work-dir", "ultracloud-work/single-node-quickstart", "run directory")
	keep := flag.Bool("keep-vm", os.Getenv(lanes.EnvKeepQuickstartVM) == "1", "keep the VM after a pass and open a shell in it")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, err := vm.Preflight(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var kept *vm.Machine
	cfg := ultracloud.RunConfig{Host: host, KeepVMs: *keep, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	lane := ultracloud.Lane{Name: "single-node-quickstart", Requires: ultracloud.TCGOK,
		Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
			return lanes.SingleNodeQuickstart(ctx, cfg, lanes.QuickstartOptions{Kept: func(m *vm.Machine) { kept = m }})
		}}
	r, err := lanes.Run(ctx, lane, cfg, lanes.RunOptions{WorkDir: *workDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if kept != nil {
		defer kept.Close()
		fmt.Printf("\nVM %s kept alive (accelerator %s).\n  console log: %s\n  QEMU command line: %s/qemu-cmdline\n"+
			"Type commands to run them in the guest (e.g. systemctl status chainfire); Ctrl-D stops the VM.\n",
			kept.Name(), host.Accelerator, kept.Console().LogPath(), kept.Dir())
		if err := lanes.Interact(ctx, kept, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if !r.Passed() {
		os.Exit(1)
	}
}
