package lanes

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// QuickstartOptions configure the single-node-quickstart lane.
type QuickstartOptions struct {
	// Fixture builds the guest (default: a Builder with defaults).
	Fixture *fixture.Builder
	// Probes override readiness probes per component; the default probes
	// the fixture double's /health from inside the guest.
	Probes map[string]ultracloud.Probe
	// FailComponents makes these fixture components fail (fault injection:
	// the double exits 1 at start, as a broken service would).
	FailComponents []string
	// ComponentTimeout bounds each component's readiness (default 1 minute,
	// ×3 under TCG).
	ComponentTimeout time.Duration
	// Kept, when the VM is kept (cfg.KeepVMs or ULTRACLOUD_QUICKSTART_KEEP_VM=1)
	// and the lane passed, receives the running machine; the caller then
	// owns it (Close it).
	Kept func(*vm.Machine)
}

// fixtureProbe is the readiness probe of a fixture component double.
func fixtureProbe(name string) ultracloud.Probe {
	return ultracloud.Probe{Command: fmt.Sprintf("wget -qO- http://127.0.0.1:$(cat /run/ultracloud/components/%s.port)/health", name)}
}

// SingleNodeQuickstart boots the single-node-quickstart topology, waits for
// each required component of the "single-node dev" profile from inside the
// guest (its unit active, then its probe), and reports per component. A
// component that fails is reported at once, not at its timeout.
func SingleNodeQuickstart(ctx context.Context, cfg ultracloud.RunConfig, o QuickstartOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "single-node-quickstart", Topology: ultracloud.TopologySingleNodeQuickstart, Fixture: o.Fixture}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		node := r.Topology().Nodes[0]
		timeout := r.Scaled(cmp.Or(o.ComponentTimeout, time.Minute))
		var opts []BootOption
		if len(o.FailComponents) > 0 {
			opts = append(opts, WithCmdline("ultracloud.fail="+strings.Join(o.FailComponents, ",")))
		}
		var m *vm.Machine
		err := r.Step(ctx, node.Name, "boot", func(ctx context.Context) (err error) {
			if m, err = r.Boot(ctx, node.Name, opts...); err != nil {
				return err
			}
			bctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return m.Shell().Connected(bctx)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", node.Name, err)
		}
		c := m.Config()
		r.Say(node.Name, fmt.Sprintf("boot: shell ready (%d vCPU, %d MiB, accelerator %s)", c.VCPUs, c.MemoryMiB, c.Host.Accelerator))
		profile, _ := ultracloud.LookupProfile(r.Topology().Profile)
		for _, comp := range profile.RequiredServices() {
			probe, ok := o.Probes[comp.Name]
			if !ok {
				probe = fixtureProbe(comp.Name)
			}
			start := time.Now()
			ready := checks.All(checks.UnitActive{M: m, Unit: comp.Unit()}, checks.Probe(m, probe))
			err := r.Wait(ctx, node.Name, comp.Name, ready, timeout)
			state, _ := m.Shell().Succeed(ctx, "systemctl is-active "+comp.Unit()+" || true")
			verdict := "probe ok"
			if err != nil {
				verdict = "NOT READY"
			}
			r.Say(node.Name, fmt.Sprintf("%-10s unit %s: %s, %s, %.1fs", comp.Name, comp.Unit(), strings.TrimSpace(state), verdict, time.Since(start).Seconds()))
			if err != nil {
				return fmt.Errorf("component %s is not ready: %w", comp.Name, err)
			}
		}
		if (r.Config().KeepVMs || os.Getenv(EnvKeepQuickstartVM) == "1") && o.Kept != nil {
			r.Keep(m)
			o.Kept(m)
		}
		return nil
	})
}
