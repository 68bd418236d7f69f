package lanes

import (
	"context"
	"fmt"
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
// are listed as skipped with the reason, never counted as passed.
func PortableControlPlaneRegressions(ctx context.Context, cfg ultracloud.RunConfig, o PortableOptions) (*ultracloud.Report, error) {
	r := ultracloud.NewReport("portable-control-plane-regressions", cfg.Host)
	var failed []string
	for _, m := range portableMembers(o) {
		start := time.Now()
		if m.run == nil {
			r.AddStep(ultracloud.Step{Name: m.name, Started: start, Finished: start, Status: ultracloud.StatusSkip,
				Reason: "not implemented in this release of the testkit"})
			continue
		}
		sub := cfg
		if cfg.WorkDir != "" {
			sub.WorkDir = cfg.WorkDir + "/" + m.name
		}
		mr, err := m.run(ctx, sub)
		s := ultracloud.Step{Name: m.name, Started: start, Finished: time.Now(), Status: ultracloud.StatusPass}
		switch {
		case err != nil:
			s.Status, s.Reason = ultracloud.StatusFail, err.Error()
		case mr.Status == ultracloud.StatusFail:
			s.Status, s.Reason = ultracloud.StatusFail, mr.Reason
		}
		if s.Status == ultracloud.StatusFail {
			failed = append(failed, m.name)
		}
		r.AddStep(s)
		if mr != nil {
			for _, st := range mr.Steps {
				st.Name = m.name + "/" + st.Name
				r.AddStep(st)
			}
		}
	}
	var err error
	if len(failed) > 0 {
		err = fmt.Errorf("members failed: %v", failed)
	}
	r.Finish(err)
	return r, writeIfDir(r, cfg)
}
