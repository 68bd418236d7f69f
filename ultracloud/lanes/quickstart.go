package lanes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// EnvKeepQuickstartVM keeps the quickstart VM alive after a pass, as the
// seed's ULTRACLOUD_QUICKSTART_KEEP_VM=1 does.
const EnvKeepQuickstartVM = "ULTRACLOUD_QUICKSTART_KEEP_VM"

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
	// Kept, when the VM is kept (cfg.KeepVMs or ULTRACLOUD_QUICKSTART_KEEP_VM=1),
	// receives the running machine; the caller then owns it (Close it).
	Kept func(*vm.Machine)
}

// fixtureProbe is the readiness probe of a fixture component double.
func fixtureProbe(name string) ultracloud.Probe {
	return ultracloud.Probe{Command: fmt.Sprintf("wget -qO- http://127.0.0.1:$(cat /run/ultracloud/components/%s.port)/health", name)}
}

// bootFixture starts the fixture guest with a direct kernel boot.
func bootFixture(ctx context.Context, fb *fixture.Builder, cfg ultracloud.RunConfig, c vm.Config) (*vm.Machine, error) {
	if fb == nil {
		var err error
		if fb, err = fixture.NewBuilder(fixture.WithLogger(cfg.Log())); err != nil {
			return nil, err
		}
	}
	arts, err := fb.Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	c.Host, c.Kernel, c.Initrd, c.Logger = cfg.Host, arts.Vmlinux, arts.Initrd, cfg.Log()
	c.Cmdline = "console=ttyS0 quiet " + c.Cmdline
	return vm.Start(ctx, c)
}

// SingleNodeQuickstart boots the single-node-quickstart topology, waits for
// each required component of the "single-node dev" profile from inside the
// guest (its unit active, then its probe), and reports per component. A
// component that fails is reported at once, not at its timeout.
func SingleNodeQuickstart(ctx context.Context, cfg ultracloud.RunConfig, o QuickstartOptions) (*ultracloud.Report, error) {
	topo, err := ultracloud.LookupTopology(ultracloud.TopologySingleNodeQuickstart)
	if err != nil {
		return nil, err
	}
	node := topo.Nodes[0]
	profile, _ := ultracloud.LookupProfile(topo.Profile)
	r := ultracloud.NewReport("single-node-quickstart", cfg.Host)
	r.Topology = topo.Name
	timeout := o.ComponentTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	if cfg.Host.Accelerator == ultracloud.AccelTCG {
		timeout *= 3
	}
	var comps []string
	for _, c := range profile.RequiredServices() {
		comps = append(comps, c.Name)
	}
	view := newProgress(cfg.Progress, []string{node.Name}, cfg.Log())
	defer view.close()
	cmdline := "ultracloud.role=shell ultracloud.hostname=" + node.Name + " ultracloud.components=" + strings.Join(comps, ",")
	if len(o.FailComponents) > 0 {
		cmdline += " ultracloud.fail=" + strings.Join(o.FailComponents, ",")
	}
	// The topology decides the machine: vCPUs, memory, disks, NICs.
	mc, err := vm.FromNode(topo, node, cfg.Host, nil)
	if err != nil {
		return nil, err
	}
	mc.Cmdline = cmdline
	if cfg.WorkDir != "" {
		mc.Dir = filepath.Join(cfg.WorkDir, "nodes", node.Name)
		if err := os.RemoveAll(mc.Dir); err != nil { // every run boots blank disks
			return nil, err
		}
	}
	t0 := time.Now()
	view.set(node.Name, "booting")
	m, err := bootFixture(ctx, o.Fixture, cfg, mc)
	keep := cfg.KeepVMs || os.Getenv(EnvKeepQuickstartVM) == "1"
	if err == nil {
		defer func() {
			if keep && r.Passed() && o.Kept != nil {
				o.Kept(m)
				return
			}
			m.Close()
		}()
		r.AddArtifact("console", m.Console().LogPath())
		bctx, cancel := context.WithTimeout(ctx, timeout)
		err = m.Shell().Connected(bctx)
		cancel()
	}
	r.AddStep(stepOf("boot", node.Name, t0, err))
	if err != nil {
		view.line(node.Name, fmt.Sprintf("boot: FAILED after %.1fs", time.Since(t0).Seconds()))
		r.Finish(fmt.Errorf("%s: %w", node.Name, err))
		return r, writeIfDir(r, cfg)
	}
	view.line(node.Name, fmt.Sprintf("boot: shell ready in %.1fs (%d vCPU, %d MiB, accelerator %s)", time.Since(t0).Seconds(), mc.VCPUs, mc.MemoryMiB, cfg.Host.Accelerator))
	for _, c := range profile.RequiredServices() {
		start := time.Now()
		view.set(node.Name, "waiting for "+c.Name)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		unit, probeRes := "active", "ok"
		err := m.Shell().WaitForUnit(cctx, c.Unit())
		if err != nil {
			unit, probeRes = "not active", "not run"
			if st, serr := m.Shell().Succeed(ctx, "systemctl is-active "+c.Unit()+" || true"); serr == nil && strings.TrimSpace(st) != "" {
				unit = strings.TrimSpace(st)
			}
		}
		probe := fixtureProbe(c.Name)
		if p, ok := o.Probes[c.Name]; ok {
			probe = p
		}
		if err == nil {
			if err = runProbe(cctx, m, probe); err != nil {
				probeRes = "failed"
			}
		}
		cancel()
		if errors.Is(err, vm.ErrUnitFailed) {
			if st, _ := m.Shell().Succeed(ctx, "systemctl status "+c.Unit()+" || true"); st != "" {
				err = fmt.Errorf("%w\n%s", err, strings.TrimSpace(st))
			}
		}
		r.AddStep(stepOf(c.Name, node.Name, start, err))
		view.line(node.Name, fmt.Sprintf("%-10s unit %s: %s, probe: %s, %.1fs", c.Name, c.Unit(), unit, probeRes, time.Since(start).Seconds()))
		if err != nil {
			r.Finish(fmt.Errorf("component %s is not ready: %w", c.Name, err))
			return r, writeIfDir(r, cfg)
		}
	}
	r.Finish(nil)
	return r, writeIfDir(r, cfg)
}

func runProbe(ctx context.Context, m *vm.Machine, p ultracloud.Probe) error {
	switch {
	case p.Command != "":
		_, err := m.Shell().WaitUntilSucceeds(ctx, p.Command)
		return err
	case p.HTTP != "":
		_, err := m.Shell().WaitUntilSucceeds(ctx, "wget -qO- "+p.HTTP)
		return err
	}
	return nil
}

func stepOf(name, node string, start time.Time, err error) ultracloud.Step {
	s := ultracloud.Step{Name: name, Node: node, Started: start, Finished: time.Now(), Status: ultracloud.StatusPass}
	if err != nil {
		s.Status, s.Reason = ultracloud.StatusFail, err.Error()
	}
	return s
}

func writeIfDir(r *ultracloud.Report, cfg ultracloud.RunConfig) error {
	if cfg.WorkDir == "" {
		return nil
	}
	_, _, err := r.WriteFiles(filepath.Join(cfg.WorkDir, "report"))
	return err
}
