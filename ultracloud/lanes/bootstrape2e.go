package lanes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/deployer"
)

// DeployerBootstrapE2E is the portable aggregate's deployer member: one
// direct-kernel node of the direct-bootstrap topology enrols with the
// deployer (phone-home, one-time secret), fetches its plan and bundle,
// applies the plan to its blank disk, installs and reboots; it then boots
// what its installed loader entry names and reports first-boot and active
// with the desired system. The disk is verified in-process against the
// plan and the install markers. No ISO and no firmware: small and
// TCG-safe (baremetal-iso is the UEFI + ISO proof).
func DeployerBootstrapE2E(ctx context.Context, cfg ultracloud.RunConfig, o DirectBootstrapOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "deployer-bootstrap-e2e", Topology: ultracloud.TopologyDirectBootstrap, Fixture: o.Fixture}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		d, err := installDirect(ctx, r, o)
		if err != nil {
			return err
		}
		return r.Step(ctx, d.node.Name, "verify-disk", func(ctx context.Context) error {
			qctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := d.m.QMP().Quit(qctx); err != nil {
				return err
			}
			d.m.Wait(qctx)
			return verifyInstalledDisk(ctx, d.plan, d.node.Name, d.disk)
		})
	})
}

// HostLifecycleE2E is the portable aggregate's host-lifecycle member: the
// node of deployer-bootstrap-e2e, once active, is drained (it stops its
// components, reports drained), decommissioned (it wipes its credentials
// from its root, reports decommissioned; the server revokes its token),
// refused while no admin approved its return, then re-enrolled (a new
// attempt and token) and active again with its components running. Every
// state is checked on the server (its node status) and on the node (its
// own lifecycle record, its components, its root).
func HostLifecycleE2E(ctx context.Context, cfg ultracloud.RunConfig, o DirectBootstrapOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "host-lifecycle-e2e", Topology: ultracloud.TopologyDirectBootstrap, Fixture: o.Fixture}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		d, err := installDirect(ctx, r, o)
		if err != nil {
			return err
		}
		l := &lifecycle{d: d}
		if err := r.Step(ctx, d.node.Name, "in-service", func(ctx context.Context) error {
			return l.expect(ctx, 1, bootstrap.PhaseActive, bootstrap.NodeActive, true, true)
		}); err != nil {
			return err
		}
		if err := r.Step(ctx, d.node.Name, "drain", func(ctx context.Context) error {
			if _, err := d.srv.Drain(d.node.Name); err != nil {
				return err
			}
			return l.expect(ctx, 1, bootstrap.PhaseDrained, bootstrap.NodeDrained, false, true)
		}); err != nil {
			return err
		}
		if err := r.Step(ctx, d.node.Name, "decommission", func(ctx context.Context) error {
			if _, err := d.srv.Decommission(d.node.Name); err != nil {
				return err
			}
			return l.expect(ctx, 1, bootstrap.PhaseDecommissioned, bootstrap.NodeDecommissioned, false, false)
		}); err != nil {
			return err
		}
		if err := r.Step(ctx, d.node.Name, "refused-until-approved", func(ctx context.Context) error {
			// The node phones home every second meanwhile.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.Scaled(3 * time.Second)):
			}
			st := l.status()
			if st.Attempt != 1 || !st.Decommissioned || st.Enrolled {
				return invariant("re-enrolment needs an admin", "the decommissioned node enrolled without approval: %+v", st)
			}
			return nil
		}); err != nil {
			return err
		}
		return r.Step(ctx, d.node.Name, "re-enrol", func(ctx context.Context) error {
			if _, err := d.srv.ApproveReenrol(d.node.Name); err != nil {
				return err
			}
			return l.expect(ctx, 2, bootstrap.PhaseActive, bootstrap.NodeActive, true, true)
		})
	})
}

// lifecycle checks the node of a directInstall on both sides.
type lifecycle struct{ d *directInstall }

func (l *lifecycle) status() deployer.NodeStatus {
	for _, st := range l.d.srv.Nodes() {
		if st.Name == l.d.node.Name {
			return st
		}
	}
	return deployer.NodeStatus{}
}

// expect waits until the server has the node at phase in attempt and the
// node itself records state, with its components running (or not) and
// its token on its root (or not).
func (l *lifecycle) expect(ctx context.Context, attempt int, phase bootstrap.Phase, state string, running, token bool) error {
	d := l.d
	name := d.node.Name
	err := until(ctx, "server", d.timeout, func(ctx context.Context) error {
		st := l.status()
		if st.Attempt != attempt || st.Phase != phase {
			return fmt.Errorf("server: %s at %s in attempt %d; want %s in attempt %d", name, st.Phase, st.Attempt, phase, attempt)
		}
		if enrolled := phase != bootstrap.PhaseDecommissioned; st.Enrolled != enrolled || st.Decommissioned == enrolled {
			return fmt.Errorf("server: %s enrolled=%v decommissioned=%v at %s", name, st.Enrolled, st.Decommissioned, phase)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sh := d.m.Shell()
	return until(ctx, "node", d.timeout, func(ctx context.Context) error {
		raw, err := sh.Succeed(ctx, "cat /run/ultracloud/lifecycle.json")
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		var nl bootstrap.NodeLifecycle
		if err := json.Unmarshal([]byte(raw), &nl); err != nil {
			return fmt.Errorf("node: lifecycle record %q: %w", raw, err)
		}
		if nl.State != state || nl.Enrolments != attempt {
			return fmt.Errorf("node: records %s after %d enrolment(s); want %s after %d", nl.State, nl.Enrolments, state, attempt)
		}
		var bad []string
		for _, c := range d.node.Components {
			r, err := sh.Execute(ctx, "systemctl is-active "+c)
			if err != nil {
				return err
			}
			if active := r.ExitCode == 0; active != running {
				bad = append(bad, fmt.Sprintf("%s active=%v", c, active))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("node: components %s; want active=%v", strings.Join(bad, ", "), running)
		}
		root, err := partitionOf(d.plan, int64(d.node.Disks[0].Size), "/")
		if err != nil {
			return err
		}
		// The agent mounts its root only while it changes it; read it
		// read-only meanwhile.
		// (Execute runs under set -e: the test's status is captured, never
		// allowed to skip the umount.)
		r, err := sh.Execute(ctx, fmt.Sprintf("mkdir -p /mnt/check; mount -o ro /dev/vda%d /mnt/check || exit 7; r=1; if test -s /mnt/check/%s; then r=0; fi; umount /mnt/check; exit $r", root, bootstrap.TokenFile))
		if err != nil {
			return err
		}
		if r.ExitCode > 1 {
			return fmt.Errorf("node: reading the root: exit %d %s", r.ExitCode, r.Stdout)
		}
		if has := r.ExitCode == 0; has != token {
			return fmt.Errorf("node: token on the root %v, want %v", has, token)
		}
		return nil
	})
}
