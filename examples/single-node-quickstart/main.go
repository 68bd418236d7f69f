// Command single-node-quickstart runs the single-node-quickstart lane: nix run .#single-node-quickstart on the fixture guest: the one-box topology boots and chainfire, flaredb, iam, plasmavmc and prismnet are checked from inside the guest. ULTRACLOUD_QUICKSTART_KEEP_VM=1 (or -keep-vms) keeps the VM after a pass and opens a shell in it.
//
// Flags are those of every lane driver (lanes.DriverOptions): -work-dir,
// -e2e, -junit-dir, -v, -json, -keep-vms, -accel, and the lane options
// -flake, -iso, -bundle, -system-id, -plan, -system, -baseline, -max-regression, -cell, -allow-tcg. Exit code: 0 passed, 1 failed,
// 2 could not run, 3 incomplete.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/photoncloud/testkit/ultracloud/lanes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := lanes.Main(ctx, "single-node-quickstart", os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
