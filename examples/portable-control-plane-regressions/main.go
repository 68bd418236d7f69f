// Command portable-control-plane-regressions runs the portable-control-plane-regressions lane: the TCG-safe aggregate (nix build .#checks.x86_64-linux.portable-control-plane-regressions) of the eval guard, deployer-bootstrap-e2e, host-lifecycle-e2e, deployer-vm-smoke and fleet-scheduler-e2e; it passes only when all five pass.
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
	code := lanes.Main(ctx, "portable-control-plane-regressions", os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
