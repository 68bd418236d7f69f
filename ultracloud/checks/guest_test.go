package checks_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func bootGuest(t *testing.T, cmdline string) *vm.Machine {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	ctx := context.Background()
	arts, err := fixture.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host, err := vm.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return vm.StartT(t, vm.Config{Name: "checks", Host: host, MemoryMiB: 384, Kernel: arts.Vmlinux, Initrd: arts.Initrd,
		Cmdline: "console=ttyS0 quiet " + cmdline})
}

// The guest checks on a real fixture VM, and Eventually failing at once
// (with the console tail) when the machine dies.
func TestGuestChecks(t *testing.T) {
	m := bootGuest(t, "ultracloud.components=chainfire,iam ultracloud.fail=iam")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ev := func(c checks.Check) error { return checks.Eventually(c, 200*time.Millisecond, 2*time.Minute).Run(ctx) }
	if err := ev(checks.All(
		checks.UnitActive{M: m, Unit: "chainfire.service"},
		checks.Command{M: m, Cmd: "test -s /run/ultracloud/components/chainfire.port"},
	)); err != nil {
		t.Fatal(err)
	}
	p, err := m.Shell().Succeed(ctx, "cat /run/ultracloud/components/chainfire.port")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(p))
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", n)
	if err := ev(checks.GuestHTTP{M: m, URL: url, BodyContains: "ok chainfire"}); err != nil {
		t.Fatal(err)
	}
	if err := (checks.GuestHTTP{M: m, URL: url, BodyContains: "ok flaredb"}).Run(ctx); err == nil {
		t.Fatal("GuestHTTP ignored the body")
	}
	if err := ev(checks.GuestPort{M: m, Port: n}); err != nil {
		t.Fatal(err)
	}
	if err := (checks.GuestPort{M: m, Port: 1}).Run(ctx); err == nil {
		t.Fatal("port 1 reported open")
	}
	// A failed unit fails at once, with its status.
	start := time.Now()
	err = ev(checks.UnitActive{M: m, Unit: "iam.service"})
	if !errors.Is(err, vm.ErrUnitFailed) || !strings.Contains(err.Error(), "iam") {
		t.Fatalf("failed unit: %v", err)
	}
	t.Logf("failed unit reported in %v", time.Since(start).Round(time.Millisecond))
	// The machine dies while a check waits: Eventually returns at once.
	go func() { time.Sleep(time.Second); m.Kill() }()
	start = time.Now()
	err = checks.Eventually(checks.Command{M: m, Cmd: "false"}, 100*time.Millisecond, time.Hour).Run(ctx)
	if !errors.Is(err, checks.ErrPermanent) && !errors.Is(err, vm.ErrExited) {
		t.Fatalf("dead machine: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("noticed the dead machine after %v", d)
	}
	if !strings.Contains(err.Error(), "checks") {
		t.Fatalf("error does not name the machine: %v", err)
	}
	_ = ultracloud.AccelTCG
}
