// Command fresh-bench-storage runs the fresh-bench-storage lane: disk and object-store measurements inside the 6-node fresh-cluster, written as JSON and SVG, compared with -baseline FILE (-max-regression 20%) (nix run ./nix/test-cluster#cluster -- fresh-bench-storage).
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
	code := lanes.Main(ctx, "fresh-bench-storage", os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
