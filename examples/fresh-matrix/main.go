// Command fresh-matrix runs the fresh-matrix lane: provider bundles composed on the 6-node fresh-cluster, one JUnit testcase per cell check, -cell NAME for one cell (nix run ./nix/test-cluster#cluster -- fresh-matrix).
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
	code := lanes.Main(ctx, "fresh-matrix", os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
