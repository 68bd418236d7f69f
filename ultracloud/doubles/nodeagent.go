package doubles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeAgentConfig configures a node-agent.
type NodeAgentConfig struct {
	// Node is this node's name.
	Node string
	// Addr is the IP the node's service instances listen on (its address
	// on the cluster network).
	Addr string
	// TTL is the heartbeat lease's time to live (default 10 s): the node's
	// record vanishes that long after its last heartbeat.
	TTL time.Duration
	// DataDir is where the disk probe writes (default /var/lib/node-agent).
	DataDir string
	// ProbeEvery is the disk probe's period (default 2 s).
	ProbeEvery time.Duration
	// ErrorFile, when it exists, holds why the node's state disk is not
	// usable (the guest could not mount it read-write): the node is
	// degraded with that reason.
	ErrorFile string
	// HealthAddr serves GET /health and GET /v1/instances.
	HealthAddr string
}

func (c *NodeAgentConfig) fill() {
	if c.TTL <= 0 {
		c.TTL = 10 * time.Second
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/node-agent"
	}
	if c.ProbeEvery <= 0 {
		c.ProbeEvery = 2 * time.Second
	}
}

type agent struct {
	c   NodeAgentConfig
	cli *clientv3.Client
	log *slog.Logger

	mu      sync.Mutex
	rec     NodeRecord
	lease   clientv3.LeaseID
	running map[string]*instanceServer
}

type instanceServer struct {
	inst Instance
	srv  *http.Server
}

// RunNodeAgent runs the node-agent until ctx ends: it keeps the node's
// record under a heartbeat lease (registering again with a new lease when
// the old one expired, e.g. after the node was paused), probes the disk
// (write and fsync; a failure reports the node degraded with the error),
// and runs exactly the instances assigned to its node, each an HTTP
// server on Addr that answers GET / with its Instance.
func RunNodeAgent(ctx context.Context, c NodeAgentConfig, cli *clientv3.Client, log *slog.Logger) error {
	c.fill()
	a := &agent{c: c, cli: cli, log: log, running: map[string]*instanceServer{},
		rec: NodeRecord{Node: c.Node, State: NodeReady, Addr: c.Addr, Since: time.Now().UTC()}}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		a.setState(NodeDegraded, err.Error())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		fmt.Fprintf(w, "ok node-agent %s state %s lease %x instances %d\n", c.Node, a.rec.State, int64(a.lease), len(a.running))
	})
	mux.HandleFunc("GET /v1/instances", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(a.instances())
	})
	stop, err := serve(c.HealthAddr, mux, log)
	if err != nil {
		return err
	}
	defer stop()
	defer a.stopAll()
	log.Info("node-agent (double) starting", "node", c.Node, "ttl", c.TTL, "data", c.DataDir)
	for ctx.Err() == nil {
		if err := a.session(ctx); err != nil && ctx.Err() == nil {
			log.Warn("node-agent: heartbeat session ended; registering again", "err", err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// session holds one heartbeat lease until it is lost.
func (a *agent) session(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	lease, err := a.cli.Grant(gctx, int64(a.c.TTL.Seconds()))
	cancel()
	if err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	ka, err := a.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keepalive: %w", err)
	}
	a.mu.Lock()
	a.lease = lease.ID
	a.mu.Unlock()
	if err := a.publishAll(ctx); err != nil {
		return err
	}
	a.log.Info("node-agent: heartbeating", "node", a.c.Node, "lease", fmt.Sprintf("%x", int64(lease.ID)))
	watch := a.cli.Watch(kctx, PrefixAssignments, clientv3.WithPrefix())
	probe := time.NewTicker(a.c.ProbeEvery)
	defer probe.Stop()
	// The watch makes reconciling quick; the tick is a resync (each a
	// chainfire read).
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	a.reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ka:
			if !ok {
				return errors.New("heartbeat lease lost (expired or revoked)")
			}
		case <-probe.C:
			if a.probe() {
				a.publishRecord(ctx)
			}
		case _, ok := <-watch:
			if !ok {
				// A cancelled watch (compaction, a lost member) closes its
				// channel: watch again rather than spin on it.
				watch = a.cli.Watch(kctx, PrefixAssignments, clientv3.WithPrefix())
			}
			a.reconcile(ctx)
		case <-tick.C:
			a.reconcile(ctx)
		}
	}
}

// probe writes and syncs a file in DataDir; it reports whether the node's
// state changed.
func (a *agent) probe() bool {
	err := func() error {
		if a.c.ErrorFile != "" {
			if msg, err := os.ReadFile(a.c.ErrorFile); err == nil {
				return errors.New(strings.TrimSpace(string(msg)))
			}
		}
		f, err := os.OpenFile(filepath.Join(a.c.DataDir, "probe"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(f, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
		return f.Close()
	}()
	if err != nil {
		return a.setState(NodeDegraded, "disk probe: "+err.Error())
	}
	return a.setState(NodeReady, "")
}

func (a *agent) setState(state, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec.State == state {
		return false
	}
	a.log.Warn("node-agent: node state", "node", a.c.Node, "state", state, "reason", reason)
	a.rec.State, a.rec.Reason, a.rec.Since = state, reason, time.Now().UTC()
	return true
}

func (a *agent) publishRecord(ctx context.Context) error {
	a.mu.Lock()
	data, _ := json.Marshal(a.rec)
	lease := a.lease
	a.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.cli.Put(pctx, PrefixNodes+a.c.Node, string(data), clientv3.WithLease(lease))
	return err
}

// publishAll writes the node's record and every running instance under
// the current lease (a new lease starts with none of them).
func (a *agent) publishAll(ctx context.Context) error {
	if err := a.publishRecord(ctx); err != nil {
		return fmt.Errorf("publish %s: %w", a.c.Node, err)
	}
	for _, inst := range a.instances() {
		if err := a.publishInstance(ctx, inst); err != nil {
			return err
		}
	}
	return nil
}

// publishMissing writes the running record of every instance whose
// record is not in chainfire (never written: a write that failed under
// load, CI of ca0f340, left a drain's instances running with no record
// for minutes; or lost with a lease); the first error is returned after
// trying them all.
func (a *agent) publishMissing(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := a.cli.Get(gctx, PrefixRunning+a.c.Node+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return fmt.Errorf("read running records: %w", err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[strings.TrimPrefix(string(kv.Key), PrefixRunning+a.c.Node+"/")] = true
	}
	var first error
	for _, inst := range a.instances() {
		id := InstanceID(inst.Service, inst.Index)
		if have[id] {
			continue
		}
		if err := a.publishInstance(ctx, inst); err != nil && first == nil {
			first = fmt.Errorf("publish %s: %w", id, err)
		}
	}
	return first
}

func (a *agent) publishInstance(ctx context.Context, inst Instance) error {
	a.mu.Lock()
	lease := a.lease
	a.mu.Unlock()
	data, _ := json.Marshal(inst)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.cli.Put(pctx, PrefixRunning+a.c.Node+"/"+InstanceID(inst.Service, inst.Index), string(data), clientv3.WithLease(lease))
	return err
}

func (a *agent) instances() []Instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Instance, 0, len(a.running))
	for _, s := range a.running {
		out = append(out, s.inst)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Service+fmt.Sprint(out[i].Index) < out[j].Service+fmt.Sprint(out[j].Index)
	})
	return out
}

// reconcile runs exactly the instances assigned to this node.
func (a *agent) reconcile(ctx context.Context) {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.cli.Get(gctx, PrefixAssignments, clientv3.WithPrefix())
	if err != nil {
		a.log.Warn("node-agent: read assignments", "err", err)
		return
	}
	want := map[string]bool{}
	for _, kv := range resp.Kvs {
		if string(kv.Value) == a.c.Node {
			want[strings.TrimPrefix(string(kv.Key), PrefixAssignments)] = true
		}
	}
	a.mu.Lock()
	var stale []string
	for id := range a.running {
		if !want[id] {
			stale = append(stale, id)
		}
	}
	a.mu.Unlock()
	for _, id := range stale {
		a.stopInstance(gctx, id)
	}
	for id := range want {
		a.mu.Lock()
		_, ok := a.running[id]
		a.mu.Unlock()
		if !ok {
			if err := a.startInstance(gctx, id); err != nil {
				a.log.Warn("node-agent: start instance", "id", id, "err", err)
			}
		}
	}
	if err := a.publishMissing(ctx); err != nil {
		a.log.Warn("node-agent: running records not written; the next reconcile tries again", "err", err)
	}
}

func (a *agent) startInstance(ctx context.Context, id string) error {
	svc, idx, err := ParseInstanceID(id)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.c.Addr, "0"))
	if err != nil {
		return err
	}
	inst := Instance{Service: svc, Index: idx, Node: a.c.Node, Addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(inst)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	a.mu.Lock()
	a.running[id] = &instanceServer{inst: inst, srv: srv}
	a.mu.Unlock()
	a.log.Info("node-agent: instance started", "id", id, "addr", inst.Addr)
	return nil // reconcile publishes it
}

func (a *agent) stopInstance(ctx context.Context, id string) {
	a.mu.Lock()
	s := a.running[id]
	delete(a.running, id)
	a.mu.Unlock()
	if s == nil {
		return
	}
	s.srv.Close()
	a.cli.Delete(ctx, PrefixRunning+a.c.Node+"/"+id)
	a.log.Info("node-agent: instance stopped (no longer assigned here)", "id", id)
}

func (a *agent) stopAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, s := range a.running {
		s.srv.Close()
		delete(a.running, id)
	}
}
