package vm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func TestPauseResumeEvents(t *testing.T) {
	m := vm.StartT(t, guest(t, "pause", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	q := m.QMP()
	mark := q.Mark()
	if err := m.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.WaitEventAfter(ctx, mark, "STOP", nil); err != nil {
		t.Fatal(err)
	}
	st, err := q.Status(ctx)
	if err != nil || st.Running || st.Status != "paused" {
		t.Fatalf("status %+v %v", st, err)
	}
	// A command sent while paused completes only after Resume.
	done := make(chan error, 1)
	go func() { _, err := m.Shell().Succeed(ctx, "true"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("command ran on a paused guest: %v", err)
	case <-time.After(time.Second):
	}
	mark = q.Mark()
	if err := m.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.WaitEventAfter(ctx, mark, "RESUME", nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Kill is a power cut: a pending WaitUntilSucceeds fails within 2 s with
// ErrExited, not at its 5-minute timeout.
func TestKillFailsPendingWaitFast(t *testing.T) {
	m := vm.StartT(t, guest(t, "kill", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	errc := make(chan error, 1)
	go func() {
		_, err := m.Shell().WaitUntilSucceeds(ctx, "test -e /never")
		errc <- err
	}()
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		took := time.Since(t0)
		t.Logf("wait returned %v after kill: %v", took, err)
		if !errors.Is(err, vm.ErrExited) {
			t.Fatalf("want ErrExited, got %v", err)
		}
		if took > 2*time.Second {
			t.Fatalf("took %v", took)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitUntilSucceeds still pending 2 s after Kill")
	}
	// Every later wait fails at once too.
	t0 = time.Now()
	if _, err := m.WaitForConsole(ctx, "never-printed"); !errors.Is(err, vm.ErrExited) || time.Since(t0) > time.Second {
		t.Fatalf("console wait after exit: %v in %v", err, time.Since(t0))
	}
}

// Three machines on one switch: all ping each other; a partition separates
// a from b and c; Heal restores; LinkDown/LinkUp cut and restore one NIC.
func TestSwitchPartitionAndLinks(t *testing.T) {
	sw, err := vm.NewSwitch("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	names := []string{"a", "b", "c"}
	ms := map[string]*vm.Machine{}
	ip := map[string]string{}
	for i, n := range names {
		port, err := sw.Port(n)
		if err != nil {
			t.Fatal(err)
		}
		mac := fmt.Sprintf("52:54:00:aa:00:%02x", i+1)
		ip[n] = fmt.Sprintf("10.100.0.%d", i+1)
		cfg := guest(t, n, fmt.Sprintf("ultracloud.if=%s=%s/24", mac, ip[n]))
		cfg.NICs = []vm.NICConfig{{ID: "lan", MAC: mac, SwitchPort: port}}
		ms[n] = vm.StartT(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, n := range names {
		if _, err := ms[n].WaitForConsole(ctx, ultracloud.MarkerPattern(ultracloud.PhaseNetworkUp).String()); err != nil {
			t.Fatal(err)
		}
		connected(t, ctx, ms[n])
	}
	ping := func(from, to string) (bool, error) {
		r, err := ms[from].Shell().Execute(ctx, "ping -c 1 -W 2 "+ip[to])
		return err == nil && r.ExitCode == 0, err
	}
	check := func(stage string, want map[[2]string]bool) {
		t.Helper()
		testenv.Reachable(t, stage, want, ping)
	}
	all := map[[2]string]bool{{"a", "b"}: true, {"b", "c"}: true, {"c", "a"}: true}
	check("connected", all)
	if err := sw.Partition([]string{"a"}, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	check("partitioned", map[[2]string]bool{{"a", "b"}: false, {"b", "c"}: true, {"c", "a"}: false})
	sw.Heal()
	check("healed", all)
	if err := ms["a"].LinkDown(ctx, "lan"); err != nil {
		t.Fatal(err)
	}
	check("a link down", map[[2]string]bool{{"b", "a"}: false, {"b", "c"}: true})
	if err := ms["a"].LinkUp(ctx, "lan"); err != nil {
		t.Fatal(err)
	}
	check("a link up", map[[2]string]bool{{"b", "a"}: true})
	st, _ := sw.Stats("a")
	t.Logf("port a: %+v", st)
	if st.Rx == 0 || st.Tx == 0 {
		t.Fatalf("no frames counted on a: %+v", st)
	}
}

// blkdebug: every read of the faulted disk returns EIO in the guest, while
// a healthy disk on the same machine reads fine.
func TestDiskReadFault(t *testing.T) {
	cfg := guest(t, "diskfault", "")
	cfg.Disks = []vm.DiskConfig{
		{ID: "good", Size: 8 * ultracloud.MiB},
		{ID: "bad", Size: 8 * ultracloud.MiB, Fault: &vm.DiskFault{Op: "read", Sector: -1}},
	}
	m := vm.StartT(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	sh := m.Shell()
	dev := func(id string) string {
		// virtio-blk exposes the QEMU serial (= disk ID) in sysfs.
		out, err := sh.Succeed(ctx, `for d in /sys/block/vd*; do if [ "$(cat $d/serial)" = `+id+` ]; then echo /dev/${d##*/}; fi; done`)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	good, bad := dev("good"), dev("bad")
	if _, err := sh.Succeed(ctx, "dd if="+good+" of=/dev/null bs=4096 count=16"); err != nil {
		t.Fatalf("healthy disk: %v", err)
	}
	r, err := sh.Execute(ctx, "dd if="+bad+" of=/dev/null bs=4096 count=16 2>&1")
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode == 0 || !strings.Contains(string(r.Stdout), "Input/output error") {
		t.Fatalf("faulted read: exit %d, %q", r.ExitCode, r.Stdout)
	}
	// Writes are untouched by a read fault.
	if _, err := sh.Succeed(ctx, "dd if=/dev/zero of="+bad+" bs=4096 count=1 oflag=direct 2>&1"); err != nil {
		t.Fatalf("write to read-faulted disk: %v", err)
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	_, err := vm.Start(context.Background(), vm.Config{Name: "x", Firmware: ultracloud.FirmwareDirect})
	if !errors.Is(err, vm.ErrConfig) || !strings.Contains(err.Error(), "needs Kernel") {
		t.Fatalf("%v", err)
	}
	// QEMU that fails to start reports its stderr and leaves nothing behind.
	cfg := guest(t, "broken", "")
	cfg.ExtraArgs = []string{"-device", "no-such-device"}
	before, _ := os.ReadDir(os.TempDir())
	_, err = vm.Start(context.Background(), cfg)
	if !errors.Is(err, vm.ErrExited) || !strings.Contains(err.Error(), "no-such-device") {
		t.Fatalf("%v", err)
	}
	after, _ := os.ReadDir(os.TempDir())
	if len(after) != len(before) {
		t.Fatalf("temp entries %d → %d after a failed start", len(before), len(after))
	}
}
