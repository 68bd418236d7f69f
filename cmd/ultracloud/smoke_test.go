package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// checkSmokeReport: every fault check and the history check ran and
// passed, and the timeline has each fault with its detection and recovery.
func checkSmokeReport(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r ultracloud.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	steps := map[string]ultracloud.Status{}
	for _, s := range r.Steps {
		steps[s.Name] = s.Status
	}
	for _, want := range append(lanes.SmokeFaults(), lanes.SmokeHistory, "chainfire healthy", "linearizable read", "iam shared state", "flaredb shared state", "placement") {
		if steps[want] != ultracloud.StatusPass {
			t.Errorf("step %s: %q", want, steps[want])
		}
	}
	var events []string
	for _, e := range r.Events {
		events = append(events, e.Name+": "+e.Detail)
	}
	all := strings.Join(events, "\n")
	for _, want := range []string{"fault: kill", "caught up", "fault: partition", "majority elected", "converged", "fault: pause", "re-placed", "reconciled", "fault: disk-errors", "degraded", "drained", "history: "} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q event in the report:\n%s", want, all)
		}
	}
}

// brokenInvariants breaks fresh-smoke's invariants on purpose, on the
// running cluster, and sees the lane fail with the invariant named.
func brokenInvariants(t *testing.T, state string) {
	ctx := context.Background()
	cl, err := cluster.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	host, err := vm.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, o lanes.FreshSmokeOptions, invariant string) {
		t.Helper()
		o.Cluster = cl
		r, err := lanes.FreshSmoke(ctx, ultracloud.RunConfig{Host: host, WorkDir: t.TempDir()}, o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != ultracloud.StatusFail || !strings.Contains(r.Reason, lanes.ErrInvariant.Error()) || !strings.Contains(r.Reason, invariant) {
			t.Fatalf("status %s, reason %q; want a failure naming %q", r.Status, r.Reason, invariant)
		}
		t.Logf("failed as it must: %s", r.Reason)
		for _, st := range r.Steps {
			t.Logf("  %-8s %-24s %-5s %6.1fs", st.Node, st.Name, st.Status, st.Duration().Seconds())
		}
	}
	workers := []string{"node04", "node05", "node06"}
	schedulers := func(ctx context.Context, env lanes.SmokeEnv, verb string) error {
		var errs []error
		for _, w := range workers {
			errs = append(errs, systemctl(ctx, env.Cluster, w, verb, "fleet-scheduler"))
		}
		return errors.Join(errs...)
	}
	t.Run("no scheduler re-places", func(t *testing.T) {
		defer func() {
			if err := schedulers(ctx, lanes.SmokeEnv{Cluster: cl}, "start"); err != nil {
				t.Error(err)
			}
		}()
		run(t, lanes.FreshSmokeOptions{Faults: []string{lanes.SmokePauseWorker}, Hooks: map[string]lanes.SmokeHook{
			lanes.SmokePauseWorker: func(ctx context.Context, env lanes.SmokeEnv) error { return schedulers(ctx, env, "stop") },
		}}, "services re-placed off a silent worker")
	})
	// A second control-plane member stopped right after the leader's
	// kill: no quorum, the writes must not go on.
	t.Run("quorum lost", func(t *testing.T) {
		stopped := ""
		defer func() {
			if stopped != "" {
				if err := systemctl(ctx, cl, stopped, "start", "chainfire"); err != nil {
					t.Error(err)
				}
			}
		}()
		run(t, lanes.FreshSmokeOptions{Faults: []string{lanes.SmokeKillControlPlane}, Injected: map[string]lanes.SmokeHook{
			lanes.SmokeKillControlPlane: func(ctx context.Context, env lanes.SmokeEnv) error {
				for _, n := range []string{"node01", "node02", "node03"} {
					if n != env.Fault.Node {
						stopped = n
						return systemctl(ctx, env.Cluster, n, "stop", "chainfire")
					}
				}
				return errors.New("no other control-plane member")
			},
		}}, "writes continue on the quorum")
	})
	// The partition healed as soon as it was made: the old leader, not
	// cut off, commits a write the minority must refuse.
	t.Run("partition ineffective", func(t *testing.T) {
		run(t, lanes.FreshSmokeOptions{Faults: []string{lanes.SmokePartitionLeader}, Injected: map[string]lanes.SmokeHook{
			lanes.SmokePartitionLeader: func(ctx context.Context, env lanes.SmokeEnv) error {
				return env.Cluster.Inject(ctx, cluster.Fault{Kind: cluster.FaultHeal})
			},
		}}, "the minority refuses writes")
	})
	// The other workers' node-agents stopped right after the disk
	// errors: a degraded worker, and no worker to drain it to.
	t.Run("nowhere to drain", func(t *testing.T) {
		var stopped []string
		defer func() {
			for _, w := range stopped {
				if err := systemctl(ctx, cl, w, "start", "node-agent"); err != nil {
					t.Error(err)
				}
			}
		}()
		run(t, lanes.FreshSmokeOptions{Faults: []string{lanes.SmokeDiskErrors}, Injected: map[string]lanes.SmokeHook{
			lanes.SmokeDiskErrors: func(ctx context.Context, env lanes.SmokeEnv) error {
				var errs []error
				for _, w := range workers {
					if w != env.Fault.Node {
						stopped = append(stopped, w)
						errs = append(errs, systemctl(ctx, env.Cluster, w, "stop", "node-agent"))
					}
				}
				return errors.Join(errs...)
			},
		}}, "a degraded worker is drained")
	})
	t.Run("acknowledged writes dropped", func(t *testing.T) {
		run(t, lanes.FreshSmokeOptions{Faults: []string{}, Hooks: map[string]lanes.SmokeHook{
			lanes.SmokeHistory: func(ctx context.Context, env lanes.SmokeEnv) error {
				_, err := env.KV.Delete(ctx, env.Prefix+"history/", clientv3.WithPrefix())
				return err
			},
		}}, "no acknowledged write lost")
	})
}

// systemctl runs `systemctl verb unit` on node.
func systemctl(ctx context.Context, op cluster.Operator, node, verb, unit string) error {
	c, err := op.SSH(ctx, node)
	if err != nil {
		return err
	}
	defer c.Close()
	if code, err := cluster.RunSSH(ctx, c, "systemctl "+verb+" "+unit, nil, nil, nil); err != nil || code != 0 {
		return errors.Join(err, fmt.Errorf("%s: systemctl %s %s: exit %d", node, verb, unit, code))
	}
	return nil
}
