// Command single-node-quickstart runs `nix run .#single-node-quickstart` on
// the fixture guest: it boots the one-box topology and waits for chainfire,
// flaredb, iam, plasmavmc and prismnet from inside the guest. With
// ULTRACLOUD_QUICKSTART_KEEP_VM=1 (or -keep-vm) the VM stays up after a
// pass and you get a shell in it. Exit code: 0 passed, 1 failed, 2 could
// not run, 3 incomplete.
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
	keep := flag.Bool("keep-vm", false, "keep the VM after a pass and open a shell in it (also "+lanes.EnvKeepQuickstartVM+"=1)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, err := vm.Preflight(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(lanes.ExitCouldNotRun)
	}
	cfg := ultracloud.RunConfig{Host: host, KeepVMs: *keep, Progress: os.Stderr,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	r, err := lanes.RunQuickstart(ctx, cfg, lanes.RunOptions{WorkDir: *workDir}, os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(lanes.ExitCouldNotRun)
	}
	os.Exit(lanes.ExitCode(r))
}
