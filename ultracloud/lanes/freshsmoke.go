package lanes

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
	"github.com/photoncloud/testkit/ultracloud/fixture"
)

// The fault checks of fresh-smoke, in the order they run, and the final
// history check.
const (
	SmokeKillControlPlane = "kill-control-plane"
	SmokePartitionLeader  = "partition-leader"
	SmokePauseWorker      = "pause-worker"
	SmokeDiskErrors       = "disk-errors"
	SmokeHistory          = "history"
)

// SmokeFaults are fresh-smoke's fault checks, in order.
func SmokeFaults() []string {
	return []string{SmokeKillControlPlane, SmokePartitionLeader, SmokePauseWorker, SmokeDiskErrors}
}

// ErrInvariant: a fresh-smoke invariant did not hold; the error names it.
var ErrInvariant = errors.New("invariant violated")

// SmokeEnv is what a SmokeHook gets: the cluster and a chainfire client.
type SmokeEnv struct {
	Cluster cluster.Operator
	KV      *clientv3.Client
	// Prefix is this run's prefix in chainfire (its history keys are
	// Prefix+"history/<seq>").
	Prefix string
	// Service is the service the run places.
	Service string
	// Fault is, for an Injected hook, the fault the check just injected.
	Fault *cluster.Fault
}

// SmokeHook runs before a check (a test breaking an invariant on purpose).
type SmokeHook func(ctx context.Context, env SmokeEnv) error

// FreshSmokeOptions configure fresh-smoke.
type FreshSmokeOptions struct {
	// Fixture builds the guest when the lane boots its own cluster.
	Fixture *fixture.Builder
	// Cluster is a running cluster to check (`ultracloud cluster smoke`);
	// nil boots the fresh-cluster topology in the run's work dir.
	Cluster cluster.Operator
	// Replicas is how many instances of the smoke service the
	// fleet-scheduler places (default 3).
	Replicas int
	// Faults selects fault checks (default SmokeFaults()).
	Faults []string
	// Hooks run before the check of the same name (a fault or "history").
	Hooks map[string]SmokeHook
	// Injected hooks run right after the fault check of the same name
	// injected its fault (its first one: a kill, a partition, …), with
	// SmokeEnv.Fault set: a test compounding or undoing the fault.
	Injected map[string]SmokeHook
}

// FreshSmoke is the base VM-cluster gate of the canonical multi-node
// topology: readiness (every node's units active, chainfire healthy with
// three members), core behaviour (a write through node01 read
// linearizably through node03, flaredb and iam state shared across nodes,
// the scheduled service instances running where the fleet-scheduler
// placed them) and fault injection, each fault with its invariant and the
// time to detect and recover: a control-plane node killed (writes go on
// with the quorum; back, it catches up), the chainfire leader partitioned
// alone (the minority refuses writes, the majority elects and commits;
// healed, all converge), a worker paused past its heartbeat lease (its
// instances are re-placed; resumed, nothing runs twice), disk write
// errors on a worker (its node-agent reports the node degraded and the
// scheduler drains it). A client writes sequenced keys throughout; at the
// end every acknowledged write must be readable and no read may have gone
// backwards.
func FreshSmoke(ctx context.Context, cfg ultracloud.RunConfig, o FreshSmokeOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "fresh-smoke", Topology: ultracloud.TopologyFreshCluster, Fixture: o.Fixture, SSH: true, Persist: true}
	if o.Cluster != nil {
		t := o.Cluster.Topology()
		spec.Topo = &t
	}
	faults := o.Faults
	if faults == nil {
		faults = SmokeFaults()
	}
	for _, f := range faults {
		if !slices.Contains(SmokeFaults(), f) {
			return nil, fmt.Errorf("%w: fault check %q (known: %s)", ultracloud.ErrInvalid, f, strings.Join(SmokeFaults(), ", "))
		}
	}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		op, err := onCluster(ctx, r, o.Cluster)
		if err != nil {
			return err
		}
		s, err := newSmoke(r, op, o, 3, 2)
		if err != nil {
			return err
		}
		defer s.close()
		if err := s.readiness(ctx); err != nil {
			return err
		}
		if err := s.core(ctx); err != nil {
			return err
		}
		h := s.startHistory(ctx)
		var ferr error
		for _, f := range faults {
			if ferr = s.fault(ctx, f); ferr != nil {
				break
			}
		}
		// A history needs writes to check: at least minHistory acknowledged.
		until(ctx, "history writes", r.Scaled(time.Minute), func(context.Context) error { return h.atLeast(minHistory) })
		h.stop()
		herr := r.Step(ctx, "", SmokeHistory, func(ctx context.Context) error {
			if err := s.hook(ctx, SmokeHistory); err != nil {
				return err
			}
			return s.checkHistory(ctx, h)
		})
		return errors.Join(ferr, herr)
	})
}

// smoke is one fresh-smoke run on a cluster.
type smoke struct {
	r        *Run
	op       cluster.Operator
	o        FreshSmokeOptions
	t        *tunnels
	topo     ultracloud.Topology
	members  []string // chainfire members
	workers  []string // node-agent nodes
	kv       *clientv3.Client
	prefix   string
	service  string
	replicas int
	active   string // the fault check running
	injected bool   // its Injected hook ran
}

// newSmoke prepares checks on op's cluster, which must run chainfire on at
// least minMembers nodes and node-agent on at least minWorkers.
func newSmoke(r *Run, op cluster.Operator, o FreshSmokeOptions, minMembers, minWorkers int) (*smoke, error) {
	s := &smoke{r: r, op: op, o: o, t: newTunnels(op), topo: op.Topology(), prefix: "/smoke/" + r.ID() + "/",
		service: "smoke-web", replicas: cmp.Or(o.Replicas, 3)}
	for _, n := range s.topo.Nodes {
		if slices.Contains(n.Components, "chainfire") {
			s.members = append(s.members, n.Name)
		}
		if slices.Contains(n.Components, "node-agent") {
			s.workers = append(s.workers, n.Name)
		}
	}
	if len(s.members) < minMembers || len(s.workers) < minWorkers {
		return nil, fmt.Errorf("%w: %s needs at least %d chainfire nodes and %d node-agent nodes; topology %s has %d and %d",
			ultracloud.ErrInvalid, r.spec.Name, minMembers, minWorkers, s.topo.Name, len(s.members), len(s.workers))
	}
	kv, err := s.t.chainfire(s.members...)
	if err != nil {
		return nil, err
	}
	s.kv = kv
	return s, nil
}

func (s *smoke) close() {
	s.kv.Close()
	s.t.close()
}

func (s *smoke) env() SmokeEnv {
	return SmokeEnv{Cluster: s.op, KV: s.kv, Prefix: s.prefix, Service: s.service}
}

func (s *smoke) hook(ctx context.Context, name string) error {
	if h := s.o.Hooks[name]; h != nil {
		if err := h(ctx, s.env()); err != nil {
			return fmt.Errorf("hook before %s: %w", name, err)
		}
	}
	return nil
}

func invariant(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvariant, name, fmt.Sprintf(format, args...))
}

// giveUp wraps an answer that ends an until at once: waiting longer
// cannot change it.
func giveUp(err error) error { return finalErr{err} }

type finalErr struct{ error }

func (e finalErr) Unwrap() error { return e.error }

// until retries f every interval until it returns nil or timeout passes
// (or an error made by giveUp); the last error is returned, wrapped with
// what.
func until(ctx context.Context, what string, timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error // the last answer not cut short by the bound
	for {
		actx, acancel := context.WithTimeout(ctx, 15*time.Second)
		err := f(actx)
		acancel()
		if err == nil {
			return nil
		}
		var final finalErr
		if errors.As(err, &final) {
			return fmt.Errorf("%s: %w", what, final.error)
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s: %w", what, timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// retry runs f up to attempts times, each bounded by per, half a second
// apart; the last error is returned, wrapped with what.
func retry(ctx context.Context, what string, attempts int, per time.Duration, f func(ctx context.Context) error) error {
	var err error
	for i := 0; i < attempts; i++ {
		actx, cancel := context.WithTimeout(ctx, per)
		err = f(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("%s: %d attempts of at most %s: %w", what, attempts, per, err)
	}
	return nil
}

// single is a chainfire client of one member only.
func (s *smoke) single(node string) (*clientv3.Client, error) { return s.t.chainfire(node) }

// readiness: every node's units active; chainfire healthy with its
// members, all agreeing on one leader.
func (s *smoke) readiness(ctx context.Context) error {
	for _, n := range s.topo.Nodes {
		units := make([]string, len(n.Components))
		for i, c := range n.Components {
			units[i] = c + ".service"
		}
		err := s.r.Step(ctx, n.Name, "units active", func(ctx context.Context) error {
			return until(ctx, "units of "+n.Name, s.r.Scaled(2*time.Minute), func(ctx context.Context) error {
				out, err := s.t.run(ctx, n.Name, "systemctl is-active "+strings.Join(units, " "))
				if err != nil {
					return fmt.Errorf("%v: %s", err, strings.Join(strings.Fields(out), " "))
				}
				return s.unitsHealthy(ctx, n.Name, n.Components)
			})
		})
		if err != nil {
			return err
		}
	}
	return s.r.Step(ctx, "", "chainfire healthy", func(ctx context.Context) error {
		return until(ctx, "chainfire health", s.r.Scaled(2*time.Minute), func(ctx context.Context) error {
			leader, err := s.leader(ctx)
			if err != nil {
				return err
			}
			if err := s.commitsThroughEach(ctx); err != nil {
				return err
			}
			s.r.Say("", fmt.Sprintf("chainfire: %d members, leader %s, a write commits through each", len(s.members), leader))
			return nil
		})
	})
}

// unitsHealthy asks each of node's components for GET /health on the
// port it publishes in /run/ultracloud/components/NAME.port: a double
// answers 200 only when it reaches chainfire (a linearizable read), so an
// active unit that cannot serve is named with its own answer. A unit that
// publishes no port (a real image's service) is left to `systemctl
// is-active`.
func (s *smoke) unitsHealthy(ctx context.Context, node string, comps []string) error {
	out, err := s.t.run(ctx, node, "for c in "+strings.Join(comps, " ")+"; do echo \"$c $(cat /run/ultracloud/components/$c.port 2>/dev/null)\"; done")
	if err != nil {
		return fmt.Errorf("ports of %s's units: %w", node, err)
	}
	ports := unitPorts(out)
	var errs []error
	for _, c := range comps {
		port, ok := ports[c]
		if !ok {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		code, body, err := s.t.get(hctx, node, http.MethodGet, "http://127.0.0.1:"+port+"/health")
		cancel()
		if err != nil || code != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s on %s unhealthy: %d %s %v", c, node, code, strings.TrimSpace(body), err))
		}
	}
	return errors.Join(errs...)
}

// unitPorts reads lines of "unit port" (port empty when the unit
// publishes none) into unit → port, keeping only numeric ports.
func unitPorts(out string) map[string]string {
	ports := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.Atoi(f[1]); err == nil && n > 0 && n < 65536 {
			ports[f[0]] = f[1]
		}
	}
	return ports
}

// commitsThroughEach writes a key through each chainfire member alone
// and reads it back linearizably: the quorum commits what every member
// forwards. A member that cannot is named with every member's raft
// status.
func (s *smoke) commitsThroughEach(ctx context.Context) error {
	var errs []error
	for _, m := range s.members {
		if err := func() error {
			c, err := s.single(m)
			if err != nil {
				return err
			}
			defer c.Close()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			key := s.prefix + "ready/" + m
			if _, err := c.Put(wctx, key, "committed"); err != nil {
				return fmt.Errorf("a write through %s: %w", m, err)
			}
			if resp, err := c.Get(wctx, key); err != nil || len(resp.Kvs) != 1 {
				return fmt.Errorf("a linearizable read through %s: %d keys, %v", m, respCount(resp), err)
			}
			return nil
		}(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w (members: %s)", errors.Join(errs...), s.raftStatus(ctx))
}

func respCount(r *clientv3.GetResponse) int {
	if r == nil {
		return 0
	}
	return len(r.Kvs)
}

// raftStatus is every member's view: leader, term, committed and applied
// index, database size and errors (alarms), or why it did not answer.
func (s *smoke) raftStatus(ctx context.Context) string {
	var parts []string
	for _, m := range s.members {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := s.kv.Status(sctx, fmt.Sprintf("http://%s:%d", m, doubles.ClientPort))
		cancel()
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", m, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: leader %x term %d index %d applied %d db %d KiB errors %v",
			m, st.Leader, st.RaftTerm, st.RaftIndex, st.RaftAppliedIndex, st.DbSize>>10, st.Errors))
	}
	return strings.Join(parts, "; ")
}

// leader asks every member for its status: all must answer, count the
// members, and agree on one leader, whose name is returned.
func (s *smoke) leader(ctx context.Context) (string, error) {
	ml, err := s.kv.MemberList(ctx)
	if err != nil {
		return "", err
	}
	if len(ml.Members) != len(s.members) {
		return "", fmt.Errorf("chainfire has %d members, want %d", len(ml.Members), len(s.members))
	}
	names := map[uint64]string{}
	for _, m := range ml.Members {
		if m.Name == "" {
			return "", fmt.Errorf("member %x has not started", m.ID)
		}
		names[m.ID] = m.Name
	}
	var leader uint64
	for _, n := range s.members {
		st, err := s.kv.Status(ctx, fmt.Sprintf("http://%s:%d", n, doubles.ClientPort))
		if err != nil {
			return "", fmt.Errorf("status of %s: %w", n, err)
		}
		if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
			return "", fmt.Errorf("members disagree on the leader (%s sees %x)", n, st.Leader)
		}
		leader = st.Leader
	}
	return names[leader], nil
}

// componentURL is the URL of a component double's API on node (its port
// as the guest's supervisor assigned it).
func (s *smoke) componentURL(ctx context.Context, node, comp string) (string, error) {
	out, err := s.t.run(ctx, node, "cat /run/ultracloud/components/"+comp+".port")
	if err != nil {
		return "", err
	}
	return "http://127.0.0.1:" + strings.TrimSpace(out), nil
}

// core: linearizable reads across members, flaredb and iam state shared
// across nodes, the service placed and running where assigned.
func (s *smoke) core(ctx context.Context) error {
	first, last := s.members[0], s.members[len(s.members)-1]
	err := s.r.Step(ctx, "", "linearizable read", func(ctx context.Context) error {
		w, err := s.single(first)
		if err != nil {
			return err
		}
		defer w.Close()
		rd, err := s.single(last)
		if err != nil {
			return err
		}
		defer rd.Close()
		key, val := s.prefix+"linearizable", "written through "+first+" in run "+s.r.ID()
		if _, err := w.Put(ctx, key, val); err != nil {
			return fmt.Errorf("write through %s: %w", first, err)
		}
		resp, err := rd.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("read through %s: %w", last, err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
			return invariant("linearizable read", "a write through %s is not seen by a linearizable read through %s (got %v)", first, last, resp.Kvs)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, svc := range []string{"flaredb", "iam"} {
		var on []string
		for _, n := range s.topo.Nodes {
			if slices.Contains(n.Components, svc) {
				on = append(on, n.Name)
			}
		}
		if len(on) < 2 {
			s.r.Skip("", svc+" shared state", fmt.Sprintf("the topology runs %s on %d node(s); the check needs two", svc, len(on)))
			continue
		}
		check := s.flaredb
		if svc == "iam" {
			check = s.iam
		}
		// Retried while chainfire is briefly unavailable to the double (a
		// connection reset after an earlier fault); an invariant that does
		// not hold fails at the bound.
		err := s.r.Step(ctx, "", svc+" shared state", func(ctx context.Context) error {
			return until(ctx, svc+" shared state", s.r.Scaled(30*time.Second), func(ctx context.Context) error { return check(ctx, on[0], on[1]) })
		})
		if err != nil {
			return err
		}
	}
	return s.r.Step(ctx, "", "placement", func(ctx context.Context) error {
		start := time.Now()
		if err := s.placeService(ctx); err != nil {
			return err
		}
		s.r.Say("", fmt.Sprintf("placement: %d instances of %s running where the scheduler put them after %.1fs", s.replicas, s.service, time.Since(start).Seconds()))
		return nil
	})
}

// placeService declares the service and waits until its instances run
// where the fleet-scheduler placed them.
func (s *smoke) placeService(ctx context.Context) error {
	// The scheduler places on the workers that heartbeat: all of them
	// first (a unit is active when its port opens, which may come before
	// its node-agent's first heartbeat on a loaded host).
	err := until(ctx, "every worker heartbeats", s.r.Scaled(time.Minute), func(ctx context.Context) error {
		resp, err := s.kv.Get(ctx, doubles.PrefixNodes, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, kv := range resp.Kvs {
			var rec doubles.NodeRecord
			if json.Unmarshal(kv.Value, &rec) == nil && rec.State == doubles.NodeReady {
				ready[rec.Node] = true
			}
		}
		for _, w := range s.workers {
			if !ready[w] {
				return fmt.Errorf("%s has no ready heartbeat record (ready: %v)", w, ready)
			}
		}
		return nil
	})
	if err != nil {
		return invariant("workers ready", "%v", err)
	}
	spec, _ := json.Marshal(doubles.ServiceSpec{Replicas: s.replicas})
	if _, err := s.kv.Put(ctx, doubles.PrefixServices+s.service, string(spec)); err != nil {
		return err
	}
	var placed map[string]string
	err = until(ctx, "placement", s.r.Scaled(time.Minute), func(ctx context.Context) (err error) {
		placed, err = s.converged(ctx, nil)
		return err
	})
	if err != nil {
		return invariant("placement", "%v", err)
	}
	s.r.Say("", "placement: "+fmtPlacement(placed))
	return nil
}

func fmtPlacement(p map[string]string) string {
	var out []string
	for id, n := range p {
		out = append(out, id+"→"+n)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (s *smoke) flaredb(ctx context.Context, a, b string) error {
	ua, err := s.componentURL(ctx, a, "flaredb")
	if err != nil {
		return err
	}
	ub, err := s.componentURL(ctx, b, "flaredb")
	if err != nil {
		return err
	}
	key := "smoke-" + s.r.ID()
	code, body, err := s.t.send(ctx, a, "PUT", ua+"/v1/kv/"+key, "value from "+a)
	if err != nil || code != 200 {
		return fmt.Errorf("flaredb put on %s: %d %q %v", a, code, body, err)
	}
	code, body, err = s.t.get(ctx, b, "GET", ub+"/v1/kv/"+key)
	if err != nil {
		return fmt.Errorf("flaredb get on %s: %w", b, err)
	}
	if code != 200 || body != "value from "+a {
		return invariant("flaredb shared state", "a key put through flaredb on %s reads %d %q on %s", a, code, body, b)
	}
	return nil
}

func (s *smoke) iam(ctx context.Context, a, b string) error {
	ua, err := s.componentURL(ctx, a, "iam")
	if err != nil {
		return err
	}
	ub, err := s.componentURL(ctx, b, "iam")
	if err != nil {
		return err
	}
	code, body, err := s.t.get(ctx, a, "POST", ua+"/v1/tokens?subject=smoke-"+s.r.ID())
	if err != nil || code != 200 {
		return fmt.Errorf("iam token on %s: %d %q %v", a, code, body, err)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" {
		return fmt.Errorf("iam token on %s: %q", a, body)
	}
	code, body, err = s.t.get(ctx, b, "GET", ub+"/v1/whoami", "Authorization", "Bearer "+tok.Token)
	if err != nil {
		return err
	}
	if code != 200 || !strings.Contains(body, `"smoke-`+s.r.ID()+`"`) {
		return invariant("iam token round trip", "a token issued on %s does not validate on %s: %d %q", a, b, code, body)
	}
	code, _, err = s.t.get(ctx, b, "GET", ub+"/v1/whoami", "Authorization", "Bearer "+strings.Repeat("0", 64))
	if err != nil {
		return err
	}
	if code != 401 {
		return invariant("iam token round trip", "a forged token got %d on %s, want 401", code, b)
	}
	return nil
}

// converged checks the service's placement: every instance assigned to a
// ready node (never one in avoid), registered as running exactly once, on
// that node, and answering there as itself. It returns instance → node.
func (s *smoke) converged(ctx context.Context, avoid map[string]bool) (map[string]string, error) {
	_, nodes, assigned, err := doubles.Snapshot(ctx, s.kv)
	if err != nil {
		return nil, err
	}
	resp, err := s.kv.Get(ctx, doubles.PrefixRunning, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	running := map[string][]doubles.Instance{}
	for _, kv := range resp.Kvs {
		var in doubles.Instance
		if json.Unmarshal(kv.Value, &in) == nil && in.Service == s.service {
			id := doubles.InstanceID(in.Service, in.Index)
			running[id] = append(running[id], in)
		}
	}
	out := map[string]string{}
	var problems []string
	for i := 0; i < s.replicas; i++ {
		id := doubles.InstanceID(s.service, i)
		node, ok := assigned[id]
		switch {
		case !ok:
			problems = append(problems, id+" is not assigned")
			continue
		case avoid[node]:
			problems = append(problems, fmt.Sprintf("%s is still assigned to %s", id, node))
			continue
		case nodes[node].State != doubles.NodeReady:
			problems = append(problems, fmt.Sprintf("%s is assigned to %s, which is not ready (%q)", id, node, nodes[node].State))
			continue
		}
		rs := running[id]
		if len(rs) != 1 || rs[0].Node != node {
			var where []string
			for _, r := range rs {
				where = append(where, r.Node)
			}
			problems = append(problems, fmt.Sprintf("%s assigned to %s runs on %v", id, node, where))
			continue
		}
		code, body, err := s.t.get(ctx, node, "GET", "http://"+rs[0].Addr+"/")
		var got doubles.Instance
		if err != nil || code != 200 || json.Unmarshal([]byte(body), &got) != nil || got != rs[0] {
			problems = append(problems, fmt.Sprintf("%s at %s on %s does not answer as itself (%d %q %v)", id, rs[0].Addr, node, code, body, err))
			continue
		}
		out[id] = node
	}
	for id, rs := range running {
		if _, idx, _ := doubles.ParseInstanceID(id); idx >= s.replicas {
			problems = append(problems, fmt.Sprintf("%s runs (on %d node(s)) beyond %d replicas", id, len(rs), s.replicas))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return out, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}
