package vm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// runVMScript is a script of the shape nixpkgs generates for
// config.system.build.vm (nixos/modules/virtualisation/qemu-vm.nix): disk
// image from NIX_DISK_IMAGE (created when missing), TMPDIR/USE_TMPDIR,
// the kernel parameters from QEMU_KERNEL_PARAMS, QEMU_OPTS, and "$@" last
// (where the driver's sockets go). It boots the fixture guest.
const runVMScript = `#! /bin/bash
set -e
NIX_DISK_IMAGE=$(readlink -f "${NIX_DISK_IMAGE:-./fixture.qcow2}") || test -z "$NIX_DISK_IMAGE"
if test -n "$NIX_DISK_IMAGE" && ! test -e "$NIX_DISK_IMAGE"; then
    echo "Disk image do not exist, creating the virtualisation disk image..."
    qemu-img create -f qcow2 "$NIX_DISK_IMAGE" 64M >/dev/null
    echo "Virtualisation disk image created."
fi
if [ -z "$TMPDIR" ] || [ -z "$USE_TMPDIR" ]; then
    TMPDIR=$(mktemp -d nix-vm.XXXXXXXXXX --tmpdir)
fi
mkdir -p "$TMPDIR/xchg"
cd "$TMPDIR"
exec %s -machine accel=%s -cpu max \
    -name fixture \
    -m 384 \
    -smp 1 \
    -device virtio-rng-pci \
    -drive cache=writeback,file="$NIX_DISK_IMAGE",id=drive1,if=none,index=1,werror=report -device virtio-blk-pci,drive=drive1,serial=root \
    -kernel %s \
    -initrd %s \
    -append "console=ttyS0 quiet $QEMU_KERNEL_PARAMS" \
    $QEMU_OPTS \
    "$@"
`

func TestStartScript(t *testing.T) {
	base := guest(t, "scripted", "")
	script := filepath.Join(t.TempDir(), "run-fixture-vm")
	body := fmt.Sprintf(runVMScript, base.Host.QEMU, base.Host.Accelerator, base.Kernel, base.Initrd)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	// The script shapes the machine: a Config that also shapes it is refused.
	bad := vm.Config{Name: "x", Host: base.Host, StartScript: script, Kernel: base.Kernel}
	if _, err := vm.Start(context.Background(), bad); !errors.Is(err, vm.ErrConfig) || !strings.Contains(err.Error(), "leave Kernel empty") {
		t.Fatalf("StartScript with Kernel: %v", err)
	}
	m := vm.StartT(t, vm.Config{Name: "scripted", Host: base.Host, StartScript: script,
		Cmdline: "ultracloud.hostname=from-script", ExtraArgs: []string{"-smbios", "type=1,product=run-vm-test"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	sh := m.Shell()
	// QEMU_KERNEL_PARAMS and QEMU_OPTS reached the guest; the disk is the
	// one NIX_DISK_IMAGE named, in the machine's directory.
	for cmd, want := range map[string]string{
		"cat /proc/cmdline":                  "ultracloud.hostname=from-script",
		"hostname":                           "from-script",
		"cat /sys/class/dmi/id/product_name": "run-vm-test",
		"cat /sys/block/vda/size":            fmt.Sprint(64 << 20 / 512),
	} {
		out, err := sh.Succeed(ctx, cmd)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s: %q %v, want %q", cmd, out, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "scripted.qcow2")); err != nil {
		t.Errorf("NIX_DISK_IMAGE not in the machine dir: %v", err)
	}
	// The SDK owns QMP and the console.
	st, err := m.QMP().Status(ctx)
	if err != nil || !st.Running {
		t.Fatalf("QMP: %+v %v", st, err)
	}
	if _, err := m.WaitForConsole(ctx, "phase=shell-ready"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.CommandLine(), "'"+script+"' -qmp unix:") {
		t.Errorf("command line for reproduction: %s", m.CommandLine())
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
