package vm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// One machine exercises the rest of the config surface: a restricted
// user-mode NIC whose guestfwd reaches a loopback HTTP server (and nothing
// else), files copied both ways over the shell, a qcow2 disk, and an AHCI
// CD-ROM ejected over QMP.
func TestUserNetCopyQcow2Eject(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the host, path %s\n", r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	iso := filepath.Join(t.TempDir(), "media.iso")
	if err := os.WriteFile(iso, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := guest(t, "usernet", "ultracloud.if=52:54:00:bb:00:01=10.0.2.15/24@10.0.2.2")
	cfg.NICs = []vm.NICConfig{{ID: "uplink", MAC: "52:54:00:bb:00:01", User: true,
		GuestFwd: []vm.GuestFwd{{GuestAddr: "10.0.2.100:80", HostAddr: ln.Addr().String()}},
		HostFwd:  []vm.HostFwd{{HostAddr: "127.0.0.1:0", GuestPort: 7777}}}}
	cfg.Disks = []vm.DiskConfig{{ID: "data", Size: 64 * ultracloud.MiB, Format: vm.FormatQCOW2}}
	cfg.CDROM = iso
	m := vm.StartT(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	sh := m.Shell()

	// Two requests: guestfwd serves each connection (not just the first).
	for _, path := range []string{"/one", "/two"} {
		out, err := sh.Succeed(ctx, "wget -qO- http://10.0.2.100"+path)
		if err != nil || !strings.Contains(out, "hello from the host, path "+path) {
			t.Fatalf("guestfwd %s: %q %v", path, out, err)
		}
	}
	// restrict=on: the slirp gateway forwards nothing else to the host.
	if _, err := sh.Fail(ctx, "wget -qO- -T 3 http://10.0.2.2:"+portOf(ln)+"/"); err != nil {
		t.Fatalf("restricted network reached the host directly: %v", err)
	}

	// hostfwd: the host reaches a guest listener through the port QEMU picked.
	fwd, err := m.HostForward(ctx, 7777)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.HostForward(ctx, 7778); !errors.Is(err, vm.ErrNoHostFwd) {
		t.Fatalf("unknown forward: %v", err)
	}
	if _, err := sh.Succeed(ctx, "(while true; do echo hello-from-guest | busybox nc -l -p 7777; done >/dev/null 2>&1 &)"); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && !strings.Contains(string(got), "hello-from-guest"); time.Sleep(200 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", fwd, 5*time.Second); err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, _ = io.ReadAll(c)
			c.Close()
		}
	}
	if !strings.Contains(string(got), "hello-from-guest") {
		t.Fatalf("hostfwd %s read %q", fwd, got)
	}

	// Copy both ways, bigger than one chunk, binary-safe.
	src := filepath.Join(t.TempDir(), "blob")
	blob := make([]byte, 200<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	os.WriteFile(src, blob, 0o644)
	if err := sh.CopyToGuest(ctx, src, "/tmp/in/blob"); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Succeed(ctx, "cp /tmp/in/blob /tmp/out"); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "back")
	if err := sh.CopyFromGuest(ctx, "/tmp/out", back); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); string(got) != string(blob) {
		t.Fatalf("round trip differs (%d bytes back)", len(got))
	}

	// The qcow2 disk is 64 MiB in the guest.
	out, err := sh.Succeed(ctx, "cat /sys/block/vda/size")
	if err != nil || strings.TrimSpace(out) != fmt.Sprint(64<<20/512) {
		t.Fatalf("qcow2 disk sectors %q %v", out, err)
	}

	// The CD-ROM has a medium; after EjectMedia it has none.
	medium := func() bool {
		var blocks []struct {
			Qdev     string          `json:"qdev"`
			Inserted *map[string]any `json:"inserted"`
		}
		if err := m.QMP().Run(ctx, "query-block", nil, &blocks); err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			if strings.Contains(b.Qdev, "cd0") {
				return b.Inserted != nil
			}
		}
		t.Fatalf("no cd0 in query-block: %+v", blocks)
		return false
	}
	if !medium() {
		t.Fatal("CD-ROM empty before eject")
	}
	if err := m.QMP().EjectMedia(ctx, "cd0"); err != nil {
		t.Fatal(err)
	}
	if medium() {
		t.Fatal("CD-ROM still has a medium after EjectMedia")
	}

	// Quit ends QEMU and counts as success.
	if err := m.QMP().Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("QEMU after quit: %v", err)
	}
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// UEFI: OVMF starts from a per-machine copy of the variable store and
// reaches its boot manager on the serial console.
func TestUEFIFirmwareBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if host.OVMFCode == "" {
		t.Skip("no OVMF (make deps installs it)")
	}
	m := vm.StartT(t, vm.Config{Name: "uefi", Host: host, Firmware: ultracloud.FirmwareUEFI, NoBackdoor: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := m.WaitForConsole(ctx, `BdsDxe|UEFI Interactive Shell|Shell>`); err != nil {
		t.Fatal(err)
	}
	vars, err := os.Stat(filepath.Join(m.Dir(), "OVMF_VARS.fd"))
	if err != nil || vars.Size() == 0 {
		t.Fatalf("per-VM variable store: %v", err)
	}
	if !strings.Contains(m.CommandLine(), "OVMF_VARS.fd") || strings.Contains(m.CommandLine(), "file="+host.OVMFVars) {
		t.Fatal("firmware variables must be a per-VM copy")
	}
}
