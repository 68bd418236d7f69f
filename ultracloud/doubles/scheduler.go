package doubles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// SchedulerConfig configures a fleet-scheduler.
type SchedulerConfig struct {
	// Node is this scheduler's node (its candidate name in the election).
	Node string
	// TTL is the leadership session's time to live (default 10 s).
	TTL time.Duration
	// Interval is the reconcile period while leading (default 5 s); any
	// change of nodes or services also reconciles at once.
	Interval time.Duration
	// HealthAddr serves GET /health.
	HealthAddr string
}

// ErrLostLeadership: a reconcile found another scheduler leading.
var ErrLostLeadership = errors.New("fleet-scheduler: lost leadership")

// RunScheduler runs a fleet-scheduler until ctx ends. Schedulers campaign
// in a chainfire election; the leader places every service's replicas on
// the nodes whose node-agent heartbeats and reports ready (Place), and
// writes its plan only while it still holds the leadership (a chainfire
// transaction guarded by its election key), so two schedulers never write
// conflicting plans.
func RunScheduler(ctx context.Context, c SchedulerConfig, cli *clientv3.Client, log *slog.Logger) error {
	if c.TTL <= 0 {
		c.TTL = 10 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	var leading atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "ok fleet-scheduler %s leader=%v\n", c.Node, leading.Load())
	})
	stop, err := serve(c.HealthAddr, mux, log)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("fleet-scheduler (double) starting", "node", c.Node, "ttl", c.TTL)
	for ctx.Err() == nil {
		err := lead(ctx, c, cli, log, &leading)
		leading.Store(false)
		if err != nil && ctx.Err() == nil {
			log.Warn("fleet-scheduler: not leading", "err", err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

func lead(ctx context.Context, c SchedulerConfig, cli *clientv3.Client, log *slog.Logger, leading *atomic.Bool) error {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(c.TTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, KeyElection)
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sess.Done():
		case <-cctx.Done():
		}
		cancel()
	}()
	if err := el.Campaign(cctx, c.Node); err != nil {
		cancel()
		return fmt.Errorf("campaign: %w", err)
	}
	defer cancel()
	leading.Store(true)
	log.Info("fleet-scheduler: leading", "node", c.Node, "rev", el.Rev())
	watchNodes := cli.Watch(cctx, PrefixNodes, clientv3.WithPrefix())
	watchSvcs := cli.Watch(cctx, PrefixServices, clientv3.WithPrefix())
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		if err := reconcileOnce(cctx, cli, el, log); err != nil {
			if errors.Is(err, ErrLostLeadership) {
				return err
			}
			log.Warn("fleet-scheduler: reconcile", "err", err)
		}
		select {
		case <-cctx.Done():
			return errors.New("leadership session ended")
		case <-watchNodes:
		case <-watchSvcs:
		case <-tick.C:
		}
	}
}

// Snapshot reads services, live nodes and assignments at one revision.
func Snapshot(ctx context.Context, cli *clientv3.Client) (services map[string]ServiceSpec, nodes map[string]NodeRecord, assignments map[string]string, err error) {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Txn(gctx).Then(
		clientv3.OpGet(PrefixServices, clientv3.WithPrefix()),
		clientv3.OpGet(PrefixNodes, clientv3.WithPrefix()),
		clientv3.OpGet(PrefixAssignments, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, nil, nil, err
	}
	services, nodes, assignments = map[string]ServiceSpec{}, map[string]NodeRecord{}, map[string]string{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var s ServiceSpec
		if json.Unmarshal(kv.Value, &s) == nil {
			services[strings.TrimPrefix(string(kv.Key), PrefixServices)] = s
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var n NodeRecord
		if json.Unmarshal(kv.Value, &n) == nil {
			nodes[strings.TrimPrefix(string(kv.Key), PrefixNodes)] = n
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		assignments[strings.TrimPrefix(string(kv.Key), PrefixAssignments)] = string(kv.Value)
	}
	return services, nodes, assignments, nil
}

func reconcileOnce(ctx context.Context, cli *clientv3.Client, el *concurrency.Election, log *slog.Logger) error {
	services, nodes, current, err := Snapshot(ctx, cli)
	if err != nil {
		return err
	}
	var live []string
	for name, n := range nodes {
		if n.State == NodeReady {
			live = append(live, name)
		}
	}
	plan := Place(services, live, current)
	if plan.Empty() {
		return nil
	}
	var ops []clientv3.Op
	for id, node := range plan.Assign {
		ops = append(ops, clientv3.OpPut(PrefixAssignments+id, node))
	}
	for _, id := range plan.Remove {
		ops = append(ops, clientv3.OpDelete(PrefixAssignments+id))
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Txn(tctx).If(clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrLostLeadership
	}
	for id, node := range plan.Assign {
		if from, ok := plan.Moved[id]; ok {
			why := "heartbeat lease expired"
			if n, ok := nodes[from]; ok {
				why = "node " + n.State
			}
			log.Info("fleet-scheduler: re-placed", "instance", id, "from", from, "to", node, "why", why)
		} else {
			log.Info("fleet-scheduler: placed", "instance", id, "on", node)
		}
	}
	for _, id := range plan.Remove {
		log.Info("fleet-scheduler: removed", "instance", id)
	}
	return nil
}
