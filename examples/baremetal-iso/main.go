// Command baremetal-iso runs the baremetal-iso lane: the canonical bare-metal proof (nix run ./nix/test-cluster#cluster -- baremetal-iso; with -e2e, the baremetal-iso-e2e flake check): both nodes install from the ISO under UEFI, reboot from disk and report the desired system active. For real NixOS outputs: -iso result/iso/x.iso -bundle sys/ -system-id ID -plan NODE=disko.json.
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
	code := lanes.Main(ctx, "baremetal-iso", os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
