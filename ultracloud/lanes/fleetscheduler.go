package lanes

import (
	"context"
	"fmt"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/fixture"
)

// FleetSchedulerOptions configure fleet-scheduler-e2e.
type FleetSchedulerOptions struct {
	// Fixture builds the guest (default: a Builder with defaults).
	Fixture *fixture.Builder
}

// FleetSchedulerE2E is the portable aggregate's fleet-scheduler member on
// the small fleet-scheduler-e2e topology (one chainfire node, two
// workers, one vCPU each): both workers heartbeat, two instances are
// placed one per worker and answer there, then a worker is killed and its
// instance fails over to the survivor once its heartbeat lease expires,
// with the time to detect and recover in the report.
func FleetSchedulerE2E(ctx context.Context, cfg ultracloud.RunConfig, o FleetSchedulerOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "fleet-scheduler-e2e", Topology: ultracloud.TopologyFleetScheduler, Fixture: o.Fixture, SSH: true, Persist: true}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		c, err := r.Cluster(ctx)
		if err != nil {
			return err
		}
		if err := r.Step(ctx, "", "boot", c.BootAll); err != nil {
			return err
		}
		s, err := newSmoke(r, c, FreshSmokeOptions{Replicas: 2}, 1, 2)
		if err != nil {
			return err
		}
		defer s.close()
		s.service = "fleet-e2e"
		if err := s.readiness(ctx); err != nil {
			return err
		}
		var placed map[string]string
		err = r.Step(ctx, "", "placement", func(ctx context.Context) error {
			if err := s.placeService(ctx); err != nil {
				return err
			}
			var perr error
			placed, perr = s.converged(ctx, nil)
			if perr != nil {
				return perr
			}
			on := map[string]bool{}
			for _, n := range placed {
				on[n] = true
			}
			if len(on) != len(s.workers) {
				return invariant("placement spreads", "2 instances on %d worker(s): %s", len(on), fmtPlacement(placed))
			}
			return nil
		})
		if err != nil {
			return err
		}
		victim := placed["fleet-e2e/0"]
		return r.Step(ctx, victim, "failover", func(ctx context.Context) error {
			t0 := time.Now()
			if err := s.inject(ctx, cluster.Fault{Kind: cluster.FaultKill, Node: victim}); err != nil {
				return err
			}
			var after map[string]string
			err := until(ctx, "failover", r.Scaled(time.Minute), func(ctx context.Context) (err error) {
				after, err = s.converged(ctx, map[string]bool{victim: true})
				return err
			})
			if err != nil {
				return invariant("failover off a killed worker", "%v", err)
			}
			s.phase(victim, "failover", fmt.Sprintf("re-placed (%s)", fmtPlacement(after)), t0)
			return nil
		})
	})
}
