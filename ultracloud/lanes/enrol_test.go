package lanes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// The lanes' enrolment is secured: a machine that knows its MAC but did
// not get the node's secret (no SMBIOS OEM string) is refused; the same
// machine with the secret enrols.
func TestEnrolmentNeedsTheSecret(t *testing.T) {
	cfg := runConfig(t)
	topo := DeployerSmokeTopology()
	r, err := Execute(context.Background(), cfg, Spec{Name: "enrol-secret", Topo: &topo}, func(ctx context.Context, r *Run) error {
		node := topo.Nodes[0]
		_, addr, err := r.PhoneHome(ctx, []deployer.NodeSpec{{Name: node.Name, Role: "worker", MACs: []string{node.NICs[0].MAC}}})
		if err != nil {
			return err
		}
		// The nix-agent phones home at boot; without the secret it is refused.
		m, err := r.Boot(ctx, node.Name, WithCmdline("ultracloud.role=nix-agent", "ultracloud.phone-home=http://"+strings.TrimSuffix(GuestServerAddr, ":80")),
			WithGuestFwd(vm.GuestFwd{GuestAddr: GuestServerAddr, HostAddr: addr}),
			WithMachine(func(c *vm.Config) { c.OEMStrings = nil })) // the secret withheld
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, r.Scaled(time.Minute))
		defer cancel()
		line, err := m.WaitForConsole(ctx, "nix-agent-(failed|active)")
		if err != nil {
			t.Fatalf("the agent neither failed nor activated: %v", err)
		}
		if !strings.Contains(line, "nix-agent-failed") || !strings.Contains(line, "enrolment_secret") {
			t.Errorf("enrolment without the secret was not refused naming the secret: %s", line)
		}
		// The secret as the lanes hand it (an OEM string) is what admits it.
		sec, err := m.Shell().Succeed(ctx, "cat /proc/cmdline")
		if err == nil && strings.Contains(sec, "enrol-secret") {
			t.Errorf("the secret leaked onto the kernel command line: %s", sec)
		}
		return nil
	})
	if err != nil || !r.Passed() {
		t.Fatalf("%v %s", err, r.Reason)
	}
}
