package vm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// What nixpkgs' test driver sends into the guest, answered as on NixOS.

// shutdown(): the driver writes a raw "poweroff" line and waits for QEMU to
// exit; the fixture stops its units first, as systemd does. Likewise
// `systemctl poweroff`, and `reboot` (QEMU runs with -no-reboot, so it
// exits too); `halt` stops the machine without powering it off.
func TestDriverPowerVerbs(t *testing.T) {
	for _, verb := range []string{"poweroff", "systemctl poweroff", "reboot", "halt"} {
		t.Run(strings.ReplaceAll(verb, " ", "-"), func(t *testing.T) {
			m := vm.StartT(t, guest(t, "power", "ultracloud.components=chainfire,flaredb"))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := m.Shell().WaitForUnit(ctx, "flaredb.service"); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			if err := m.Shell().SendLine(ctx, verb); err != nil {
				t.Fatal(err)
			}
			target := strings.TrimPrefix(verb, "systemctl ")
			if _, err := m.WaitForConsole(ctx, "reached target "+target); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"stopping 2 units", "units stopped, filesystems synced"} {
				if !strings.Contains(strings.Join(m.Console().Tail(200), "\n"), want) {
					t.Errorf("console lacks %q", want)
				}
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			defer wcancel()
			err := m.Wait(wctx)
			if target == "halt" {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("halt: QEMU exited (%v); halt stops the CPUs, it does not power off", err)
				}
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: QEMU still running 30 s later", verb)
			}
			t.Logf("%s: QEMU exited %.1fs after the line was sent", verb, time.Since(sent).Seconds())
		})
	}
}

// Machine.Shutdown is the driver's shutdown().
func TestMachineShutdown(t *testing.T) {
	m := vm.StartT(t, guest(t, "shutdown", "ultracloud.components=chainfire"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	start := time.Now()
	if err := m.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("powered off in %.1fs", time.Since(start).Seconds())
	if !m.Exited() {
		t.Fatal("QEMU still running")
	}
}

// wait_for_unit on an inactive unit with no pending jobs fails at once:
// the driver's own commands get NixOS's answers.
func TestDriverUnitQueries(t *testing.T) {
	m := vm.StartT(t, guest(t, "units", "ultracloud.components=chainfire,iam ultracloud.fail=iam ultracloud.users=alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sh := m.Shell()
	if err := sh.WaitForUnit(ctx, "chainfire.service"); err != nil {
		t.Fatal(err)
	}
	if err := sh.WaitForUnit(ctx, "iam.service"); !errors.Is(err, vm.ErrUnitFailed) {
		t.Fatalf("failing unit: %v", err)
	}
	port, err := sh.Succeed(ctx, "cat /run/ultracloud/components/chainfire.port")
	if err != nil {
		t.Fatal(err)
	}
	port = strings.TrimSpace(port)
	cases := []struct {
		cmd      string
		exit     int
		contains []string
	}{
		{"systemctl list-jobs --full 2>&1", 0, []string{"No jobs running."}},
		{`systemctl --no-pager show "chainfire.service" --property="ActiveState"`, 0, []string{"ActiveState=active\n"}},
		{`systemctl --no-pager show "nosuch.service" --property="ActiveState"`, 0, []string{"ActiveState=inactive\n"}},
		{`systemctl --no-pager show "nosuch.service"`, 0, []string{"LoadState=not-found\n", "ActiveState=inactive\n", "Id=nosuch.service\n"}},
		{`systemctl --no-pager show "iam.service"`, 0, []string{"ActiveState=failed\n", "Result=exit-code\n", "LoadState=loaded\n"}},
		{"systemctl is-active nosuch.service", 3, []string{"inactive"}},
		{"journalctl -u chainfire.service --no-pager", 0, []string{"chainfire"}},
		{"journalctl -u nosuch --no-pager", 0, []string{"-- No entries --"}},
		{"nc -z 127.0.0.1 " + port, 0, nil},
		{"nc -z 127.0.0.1 1", 1, nil},
		{"su -l alice -c 'id -un; pwd'", 0, []string{"alice\n/home/alice\n"}},
		{"sync", 0, nil},
		{"printf hello | base64 -w 0", 0, []string{"aGVsbG8="}},
		{"timeout 1 sleep 10", 124, nil},
	}
	for _, c := range cases {
		r, err := sh.Execute(ctx, c.cmd)
		if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		out := string(r.Stdout)
		if r.ExitCode != c.exit {
			t.Errorf("%s: exit %d, want %d: %q", c.cmd, r.ExitCode, c.exit, out)
		}
		for _, w := range c.contains {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output %q lacks %q", c.cmd, out, w)
			}
		}
	}
	// An inactive unit nothing will start: reported at once, not at the
	// timeout (the driver: 'is inactive and there are no pending jobs').
	for _, unit := range []string{"nosuch.service", "chainfire.service"} {
		if unit == "chainfire.service" {
			if _, err := sh.Succeed(ctx, "systemctl stop chainfire.service"); err != nil {
				t.Fatal(err)
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		start := time.Now()
		err := sh.WaitForUnit(wctx, unit)
		wcancel()
		if !errors.Is(err, vm.ErrUnitInactive) {
			t.Fatalf("%s: %v", unit, err)
		}
		t.Logf("%s: inactive reported in %v", unit, time.Since(start).Round(time.Millisecond))
	}
}
