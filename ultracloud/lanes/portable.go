package lanes

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// PortableOptions configure portable-control-plane-regressions.
type PortableOptions struct {
	Guards GuardOptions
	Smoke  DeployerSmokeOptions
}

// member is a lane of an aggregate; a nil run means this release does
// not implement it.
type member struct {
	name string
	run  func(context.Context, ultracloud.RunConfig) (*ultracloud.Report, error)
}

// portableMembers are the seed's members of the aggregate.
func portableMembers(o PortableOptions) []member {
	return []member{
		{"canonical-profile-eval-guards", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return CanonicalProfileEvalGuards(ctx, c, o.Guards)
		}},
		{"deployer-bootstrap-e2e", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return DeployerBootstrapE2E(ctx, c, DirectBootstrapOptions{Fixture: o.Smoke.Fixture})
		}},
		{"host-lifecycle-e2e", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return HostLifecycleE2E(ctx, c, DirectBootstrapOptions{Fixture: o.Smoke.Fixture})
		}},
		{"deployer-vm-smoke", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return DeployerVMSmoke(ctx, c, o.Smoke)
		}},
		{"fleet-scheduler-e2e", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return FleetSchedulerE2E(ctx, c, FleetSchedulerOptions{Fixture: o.Smoke.Fixture})
		}},
	}
}

// PortableControlPlaneRegressions is the TCG-safe aggregate of the seed:
// the canonical profile eval guard, deployer-bootstrap-e2e,
// host-lifecycle-e2e, deployer-vm-smoke and fleet-scheduler-e2e, one
// after the other, in one report; it passes only when all five pass. A
// member without an implementation would be skipped with the reason and
// the aggregate reported incomplete, never passed.
func PortableControlPlaneRegressions(ctx context.Context, cfg ultracloud.RunConfig, o PortableOptions) (*ultracloud.Report, error) {
	return aggregate(ctx, cfg, "portable-control-plane-regressions", portableMembers(o))
}

// aggregate runs members one after the other, each in its own work dir
// under members/, into one report: a failed member fails it, a skipped
// one (no implementation) makes it incomplete. prelude runs first (an
// aggregate's own artifacts and events).
func aggregate(ctx context.Context, cfg ultracloud.RunConfig, name string, members []member, prelude ...func(*Run)) (*ultracloud.Report, error) {
	return Execute(ctx, cfg, Spec{Name: name}, func(ctx context.Context, r *Run) error {
		for _, f := range prelude {
			f(r)
		}
		var failed []string
		for _, m := range members {
			if m.run == nil {
				r.Skip("", m.name, "not implemented in this release of the testkit")
				continue
			}
			sub := r.Config()
			sub.WorkDir = filepath.Join(r.WorkDir(), "members", m.name)
			start := time.Now()
			mr, err := m.run(ctx, sub)
			if err == nil && mr.Status != ultracloud.StatusPass {
				err = fmt.Errorf("%s: %s", mr.Status, mr.Reason)
			}
			r.Record("", m.name, start, time.Now(), err)
			if err != nil {
				failed = append(failed, m.name)
			}
			if mr != nil {
				r.Include(m.name, mr)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("members failed: %v", failed)
		}
		return nil
	})
}
