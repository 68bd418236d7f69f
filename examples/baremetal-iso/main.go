// Command baremetal-iso runs UltraCloud's canonical bare-metal proof
// (`nix run ./nix/test-cluster#cluster -- baremetal-iso`) on real QEMU under
// UEFI firmware: both nodes install from the ISO, reboot from disk and
// report the desired system active. Exit code: 0 passed, 1 failed, 2 could
// not run.
//
//	go run ./examples/baremetal-iso                 # fixture guest
//	go run ./examples/baremetal-iso -e2e            # as the flake check runs it
//	go run ./examples/baremetal-iso -iso result/iso/x.iso -bundle sys/ \
//	    -system-id $(cat sys/root/etc/ultracloud/system-id) \
//	    -plan baremetal-qemu-control-plane=cp.json -plan baremetal-qemu-worker=w.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

type planFlags map[string]string

func (p planFlags) String() string { return fmt.Sprint(map[string]string(p)) }
func (p planFlags) Set(v string) error {
	node, file, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want NODE=PLAN.json, got %q", v)
	}
	p[node] = file
	return nil
}

func main() {
	workDir := flag.String("work-dir", "", "where disks, logs and the report go (default ./ultracloud-work/baremetal-iso)")
	e2e := flag.Bool("e2e", false, "non-interactive flake-check mode: no live view, JUnit to $out when set")
	keep := flag.Bool("keep-vms", false, "leave the machines running after the lane")
	iso := flag.String("iso", "", "installer ISO (default: the fixture's, built in-process)")
	bundle := flag.String("bundle", "", "target system tree with esp/ and root/ (default: the fixture's)")
	systemID := flag.String("system-id", "", "desired system id of -bundle")
	plans := planFlags{}
	flag.Var(plans, "plan", "NODE=disko.json (repeatable; default: the fixture plans)")
	verbose := flag.Bool("v", false, "log every step")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelWarn
	if *verbose || *e2e {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	host, err := vm.Preflight(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baremetal-iso:", err)
		os.Exit(2)
	}
	opts := lanes.BaremetalOptions{ISO: *iso, BundleDir: *bundle, SystemID: *systemID, Plans: map[string][]byte{}}
	for node, file := range plans {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baremetal-iso: -plan:", err)
			os.Exit(2)
		}
		opts.Plans[node] = data
	}
	cfg := ultracloud.RunConfig{Host: host, Logger: log, KeepVMs: *keep}
	run := lanes.RunOptions{WorkDir: *workDir}
	if *e2e {
		run.JUnitOut = os.Getenv("out")
		if run.WorkDir == "" {
			run.WorkDir = "ultracloud-work/baremetal-iso-e2e"
		}
	} else {
		cfg.Progress = os.Stderr
	}
	lane := ultracloud.Lane{Name: "baremetal-iso", Requires: ultracloud.TCGOK,
		Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
			return lanes.BaremetalISO(ctx, cfg, opts)
		}}
	r, err := lanes.Run(ctx, lane, cfg, run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baremetal-iso:", err)
		os.Exit(2)
	}
	os.Exit(lanes.ExitCode(r))
}
