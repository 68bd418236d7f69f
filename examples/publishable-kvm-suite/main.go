// Command publishable-kvm-suite runs the publishable KVM suite: it writes DIR/environment.json (kernel, CPU and vmx/svm, /dev/kvm and its usability, the nested parameter, QEMU, OVMF, Nix and testkit versions), then fresh-smoke, fresh-demo-vm-webapp and fresh-matrix into one report and JUnit in DIR (./nix/test-cluster/run-publishable-kvm-suite.sh DIR).
//
//	publishable-kvm-suite DIR [-allow-tcg] [flags]
//
// Without usable KVM it stops at preflight with exit 2 after writing
// environment.json, unless -allow-tcg (the fixture guest under TCG,
// recorded in the report). Flags are those of every lane driver
// (lanes.DriverOptions): -work-dir, -e2e, -junit-dir, -v, -json,
// -keep-vms, -accel, and the lane options -flake, -iso, -bundle,
// -system-id, -plan, -system, -baseline, -max-regression, -cell, -allow-tcg. Exit code: 0
// passed, 1 failed, 2 could not run, 3 incomplete.
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
	code := lanes.Main(ctx, "publishable-kvm-suite", lanes.PublishableArgs(os.Args[1:]), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
