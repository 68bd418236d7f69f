package vm_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// nixosShapedBackdoor does what the backdoor script of nixpkgs'
// test-instrumentation.nix does, step by step: the driver's environment,
// /tmp as working directory, stdio on hvc0 and stderr on ttyS0, a raw
// port, the greeting, then bash reading commands from the port. The guest
// runs a handed script instead of its own backdoor (drop the real script
// in the same way to test against it).
const nixosShapedBackdoor = `export USER=root
export HOME=/root
export DISPLAY=:0.0
test -e /etc/profile && . /etc/profile
export PAGER=
cd /tmp
exec < /dev/hvc0 > /dev/hvc0
until exec 2> /dev/ttyS0; do sleep 0.1; done
echo "connecting to host..." >&2
stty -F /dev/hvc0 raw -echo
echo "Spawning backdoor root shell..."
exec bash --norc /dev/hvc0
`

// The SDK's client against a NixOS-shaped backdoor script in the guest:
// commands, the environment the driver's tests see, a reboot with a new
// greeting and a reconnect, and an inactive unit failing at once.
func TestHandedBackdoorScript(t *testing.T) {
	cfg := guest(t, "nixbackdoor", "")
	cfg.AllowReboot = true
	cfg.OEMStrings = []string{"ultracloud.backdoor-script=" + base64.StdEncoding.EncodeToString([]byte(nixosShapedBackdoor))}
	m := vm.StartT(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	connected(t, ctx, m)
	sh := m.Shell()
	if out, err := sh.Succeed(ctx, `echo "$(pwd) [$PAGER] [$USER] [$DISPLAY]"`); err != nil || strings.TrimSpace(out) != "/tmp [] [root] [:0.0]" {
		t.Fatalf("environment: %q %v", out, err)
	}
	if _, err := m.WaitForConsole(ctx, "connecting to host"); err != nil {
		t.Fatalf("the script's stderr is the serial console: %v", err)
	}
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := sh.Succeed(ctx, "cat /proc/uptime"); err != nil || out == "" {
		t.Fatalf("after reboot: %q %v", out, err)
	}
	// It fails with ErrUnitInactive, not by waiting out its context.
	uctx, ucancel := context.WithTimeout(ctx, time.Minute)
	defer ucancel()
	start := time.Now()
	err := sh.WaitForUnit(uctx, "never-started.service")
	if !errors.Is(err, vm.ErrUnitInactive) || uctx.Err() != nil {
		t.Fatalf("inactive unit: %v", err)
	}
	t.Logf("an inactive unit failed WaitForUnit after %v", time.Since(start).Round(time.Millisecond))
}
