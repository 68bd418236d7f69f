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

// portableMembers are the seed's members of the aggregate; nil Run means
// this release does not implement it.
func portableMembers(o PortableOptions) []struct {
	name string
	run  func(context.Context, ultracloud.RunConfig) (*ultracloud.Report, error)
} {
	return []struct {
		name string
		run  func(context.Context, ultracloud.RunConfig) (*ultracloud.Report, error)
	}{
		{"canonical-profile-eval-guards", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return CanonicalProfileEvalGuards(ctx, c, o.Guards)
		}},
		{"deployer-bootstrap-e2e", nil},
		{"host-lifecycle-e2e", nil},
		{"deployer-vm-smoke", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return DeployerVMSmoke(ctx, c, o.Smoke)
		}},
		{"fleet-scheduler-e2e", nil},
	}
}

// PortableControlPlaneRegressions is the TCG-safe aggregate of the seed:
// the canonical profile eval guard, deployer-vm-smoke and the other members
// as they exist, in one report. Members this release does not implement
// are skipped with the reason: the aggregate is then incomplete, never
// passed.
func PortableControlPlaneRegressions(ctx context.Context, cfg ultracloud.RunConfig, o PortableOptions) (*ultracloud.Report, error) {
	return Execute(ctx, cfg, Spec{Name: "portable-control-plane-regressions"}, func(ctx context.Context, r *Run) error {
		var failed []string
		for _, m := range portableMembers(o) {
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
