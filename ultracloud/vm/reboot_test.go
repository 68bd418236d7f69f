package vm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Reboots, as NixOS tests do them: reboot() (Ctrl-Alt-Del) returns once the
// new shell greets; a command that reboots the guest under itself fails
// with ErrRebooted and the shell works again; commands sent after an
// unplanned reboot are answered by the new shell.
func TestRebootReconnects(t *testing.T) {
	cfg := guest(t, "reboot", "ultracloud.components=chainfire")
	cfg.AllowReboot = true
	m := vm.StartT(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sh := m.Shell()
	if _, err := sh.Succeed(ctx, "echo before > /tmp/marker"); err != nil {
		t.Fatal(err)
	}
	if out, err := m.QMP().MonitorCommand(ctx, "info status"); err != nil || !strings.Contains(out, "running") {
		t.Fatalf("monitor: %q %v", out, err)
	}
	start := time.Now()
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("reboot() returned after %v", time.Since(start).Round(time.Millisecond))
	if _, err := sh.Succeed(ctx, "test ! -e /tmp/marker"); err != nil {
		t.Fatalf("the guest did not reboot (tmpfs marker survived): %v", err)
	}
	if err := sh.WaitForUnit(ctx, "chainfire.service"); err != nil {
		t.Fatal(err)
	}

	// A command that reboots the guest under itself.
	_, err := sh.Execute(ctx, "reboot; sleep 60")
	if !errors.Is(err, vm.ErrRebooted) {
		t.Fatalf("a command cut by a reboot: %v", err)
	}
	out, err := sh.Succeed(ctx, "cat /proc/uptime; test ! -e /tmp/marker && echo fresh")
	if err != nil || !strings.Contains(out, "fresh") {
		t.Fatalf("after an unplanned reboot: %q %v", out, err)
	}
	// wait_for_open_port through nc -z, on localhost.
	port := strings.TrimSpace(must(sh.Succeed(ctx, "cat /run/ultracloud/components/chainfire.port")))
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if err := sh.WaitForOpenPort(pctx, atoi(port)); err != nil {
		t.Fatal(err)
	}
	// A machine without AllowReboot refuses to reboot (QEMU would exit).
	other := vm.StartT(t, guest(t, "noreboot", ""))
	if err := other.Reboot(ctx); !errors.Is(err, vm.ErrConfig) {
		t.Fatalf("reboot without AllowReboot: %v", err)
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
