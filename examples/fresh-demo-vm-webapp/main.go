// Command fresh-demo-vm-webapp runs the fresh-demo-vm-webapp lane: on the 6-node fresh-cluster, a webapp VM (plasmavmc, prismnet) keeps its entries in lightningstor through the death of its worker (nix run ./nix/test-cluster#cluster -- fresh-demo-vm-webapp).
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
	code := lanes.Main(ctx, "fresh-demo-vm-webapp", os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
