package doubles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// fiberlb's state in chainfire.
const (
	// PrefixFiberLB holds each load balancer's spec.
	PrefixFiberLB = "/fiberlb/lbs/"
	// PrefixFiberLBStatus holds each load balancer's VIP and healthy
	// backends, under the lease of the node serving it.
	PrefixFiberLBStatus = "/fiberlb/status/"
)

// LB is a load balancer: TCP on Port of a VIP on prismnet, spread round
// robin over the healthy Backends (host:port).
type LB struct {
	Name     string   `json:"name"`
	Port     int      `json:"port"`
	Backends []string `json:"backends"`
	// Node serves the LB (the node whose API created it).
	Node string `json:"node,omitempty"`
}

// LBStatus is what the serving node reports.
type LBStatus struct {
	Name    string   `json:"name"`
	Node    string   `json:"node"`
	VIP     string   `json:"vip"`
	Healthy []string `json:"healthy"`
	// Checked is when the serving node wrote this status (it writes it
	// when the VIP or the healthy backends change).
	Checked time.Time `json:"checked"`
}

// FiberLBConfig configures RunFiberLB.
type FiberLBConfig struct {
	// Node is this node; HealthAddr serves the API.
	Node, HealthAddr string
	// Prismnet returns this node's prismnet API (VIPs are its ports).
	Prismnet func() (string, error)
	// Interval between health checks (default 500 ms); a backend is out
	// after Fall failed checks (default 2) and back after one success.
	Interval time.Duration
	Fall     int
	// TTL of the status lease (default 10 s).
	TTL time.Duration
	// ResyncEvery is how often the LB specs are read again without a
	// change seen by the watch (default 5 s).
	ResyncEvery time.Duration
}

// RunFiberLB runs fiberlb's double until ctx ends: POST /v1/lbs/{name}
// (an LB) on a node makes that node serve it: a prismnet port is its VIP,
// a TCP listener on VIP:Port forwards each connection to the next healthy
// backend (round robin), backends are checked by TCP connect every
// Interval. GET /v1/lbs/{name} answers the LBStatus, DELETE removes the
// LB. Specs live in chainfire; the serving node keeps its status there
// under its lease. A fixture LB is served by one node (no failover of the
// VIP).
func RunFiberLB(ctx context.Context, cfg FiberLBConfig, cli *clientv3.Client, log *slog.Logger) error {
	if cfg.Interval == 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Fall == 0 {
		cfg.Fall = 2
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.ResyncEvery == 0 {
		cfg.ResyncEvery = 5 * time.Second
	}
	f := &fiberlb{cfg: cfg, cli: cli, log: log, lbs: map[string]*servedLB{}}
	f.lease = &lease{}
	if err := f.lease.keep(ctx, cli, cfg.TTL, "fiberlb", log, func(context.Context, clientv3.LeaseID) error { return nil }); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("fiberlb", cli))
	mux.HandleFunc("POST /v1/lbs/{name}", f.create)
	mux.HandleFunc("GET /v1/lbs/{name}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := cli.Get(r.Context(), PrefixFiberLBStatus+r.PathValue("name"))
		if err != nil {
			http.Error(w, "fiberlb: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(resp.Kvs) == 0 {
			http.Error(w, "fiberlb: no LB "+r.PathValue("name")+" served", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(resp.Kvs[0].Value)
	})
	mux.HandleFunc("DELETE /v1/lbs/{name}", deleteKey(cli, PrefixFiberLB, "fiberlb", "LB"))
	stop, err := serve(cfg.HealthAddr, mux, log)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("fiberlb up", "node", cfg.Node)
	// Backends are checked every Interval; the LB specs are read from
	// chainfire when they change (a watch) and every ResyncEvery, not on
	// every check: under TCG each read costs the members real CPU.
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	specs := cli.Watch(clientv3.WithRequireLeader(ctx), PrefixFiberLB, clientv3.WithPrefix())
	var read time.Time
	for {
		if time.Since(read) >= cfg.ResyncEvery {
			if f.load(ctx) {
				read = time.Now()
			}
		}
		f.checkAll(ctx)
		select {
		case _, ok := <-specs:
			read = time.Time{}
			if !ok {
				specs = cli.Watch(clientv3.WithRequireLeader(ctx), PrefixFiberLB, clientv3.WithPrefix())
			}
		case <-ctx.Done():
			f.mu.Lock()
			for name, lb := range f.lbs {
				f.unserve(context.WithoutCancel(ctx), lb)
				delete(f.lbs, name)
			}
			f.mu.Unlock()
			return nil
		case <-tick.C:
		}
	}
}

type fiberlb struct {
	cfg   FiberLBConfig
	cli   *clientv3.Client
	log   *slog.Logger
	lease *lease
	mu    sync.Mutex
	lbs   map[string]*servedLB
}

// servedLB is an LB this node serves.
type servedLB struct {
	spec LB
	vip  string
	ln   net.Listener
	mu   sync.Mutex
	fail map[string]int // consecutive failed checks per backend
	next int
	// published is the status last written to chainfire (written again
	// only when it changes; it lives under the serving node's lease).
	published string
}

func (s *servedLB) healthy(fall int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.spec.Backends {
		if s.fail[b] < fall {
			out = append(out, b)
		}
	}
	return out
}

func (f *fiberlb) create(w http.ResponseWriter, r *http.Request) {
	var lb LB
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&lb); err != nil {
		http.Error(w, "fiberlb: want a JSON LB: "+err.Error(), http.StatusBadRequest)
		return
	}
	lb.Name, lb.Node = r.PathValue("name"), f.cfg.Node
	var bad []string
	if !portName.MatchString(lb.Name) || len(lb.Name) > 7 {
		bad = append(bad, fmt.Sprintf("name %q: 1-7 of a-z, 0-9 and -", lb.Name))
	}
	if lb.Port < 1 || lb.Port > 65535 {
		bad = append(bad, fmt.Sprintf("port %d: 1-65535", lb.Port))
	}
	if len(lb.Backends) == 0 {
		bad = append(bad, "backends: at least one host:port")
	}
	for _, b := range lb.Backends {
		if _, p, err := net.SplitHostPort(b); err != nil || p == "" {
			bad = append(bad, fmt.Sprintf("backend %q: want host:port", b))
		}
	}
	if len(bad) > 0 {
		http.Error(w, "fiberlb: "+fmt.Sprint(bad), http.StatusBadRequest)
		return
	}
	raw, _ := json.Marshal(lb)
	if _, err := f.cli.Put(r.Context(), PrefixFiberLB+lb.Name, string(raw)); err != nil {
		http.Error(w, "fiberlb: chainfire: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(lb)
}

// load reads the LB specs, serves this node's LBs and stops the ones
// gone or changed; it reports whether the read succeeded.
func (f *fiberlb) load(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := f.cli.Get(rctx, PrefixFiberLB, clientv3.WithPrefix())
	if err != nil {
		return false
	}
	want := map[string]LB{}
	for _, kv := range resp.Kvs {
		var lb LB
		if json.Unmarshal(kv.Value, &lb) == nil && lb.Node == f.cfg.Node {
			want[lb.Name] = lb
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, s := range f.lbs {
		if lb, ok := want[name]; !ok || !slices.Equal(lb.Backends, s.spec.Backends) || lb.Port != s.spec.Port {
			f.unserve(rctx, s)
			delete(f.lbs, name)
		}
	}
	ok := true
	for name, lb := range want {
		if f.lbs[name] != nil {
			continue
		}
		s, err := f.serve(rctx, lb)
		if err != nil {
			f.log.Error("LB", "lb", name, "err", err)
			ok = false // try again at the next check, not after a resync
			continue
		}
		f.lbs[name] = s
	}
	return ok
}

// checkAll checks every served LB's backends and writes its status when
// it changed (Checked is when the status last changed).
func (f *fiberlb) checkAll(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, s := range f.lbs {
		f.check(s)
		healthy := s.healthy(f.cfg.Fall)
		key := fmt.Sprint(s.vip, healthy, f.lease.ID())
		if key == s.published {
			continue
		}
		st, _ := json.Marshal(LBStatus{Name: name, Node: f.cfg.Node, VIP: s.vip, Healthy: healthy, Checked: time.Now().UTC()})
		if _, err := f.cli.Put(rctx, PrefixFiberLBStatus+name, string(st), clientv3.WithLease(f.lease.ID())); err == nil {
			s.published = key
		}
	}
}

// check probes every backend once, in parallel (TCP connect, 1 s).
func (f *fiberlb) check(s *servedLB) {
	var wg sync.WaitGroup
	for _, b := range s.spec.Backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", b, time.Second)
			if err == nil {
				c.Close()
			}
			s.mu.Lock()
			was := s.fail[b]
			if err != nil {
				s.fail[b]++
			} else {
				s.fail[b] = 0
			}
			now := s.fail[b]
			s.mu.Unlock()
			if was < f.cfg.Fall && now >= f.cfg.Fall {
				f.log.Info("backend out", "lb", s.spec.Name, "backend", b, "err", err)
			} else if was >= f.cfg.Fall && now == 0 {
				f.log.Info("backend back", "lb", s.spec.Name, "backend", b)
			}
		}()
	}
	wg.Wait()
}

func (f *fiberlb) serve(ctx context.Context, lb LB) (*servedLB, error) {
	base, err := f.cfg.Prismnet()
	if err != nil {
		return nil, err
	}
	port := "lb-" + lb.Name
	p, err := attachPort(ctx, base, port)
	if err != nil {
		return nil, err
	}
	ln, err := listenIn(filepath.Join("/run/netns", p.NetNS), net.JoinHostPort(p.IP, strconv.Itoa(lb.Port)))
	if err != nil {
		call(ctx, http.MethodDelete, base+"/v1/ports/"+port)
		return nil, err
	}
	s := &servedLB{spec: lb, vip: p.IP, ln: ln, fail: map[string]int{}}
	go f.accept(s)
	f.log.Info("LB serving", "lb", lb.Name, "vip", p.IP, "port", lb.Port, "backends", lb.Backends)
	return s, nil
}

func (f *fiberlb) unserve(ctx context.Context, s *servedLB) {
	s.ln.Close()
	if base, err := f.cfg.Prismnet(); err == nil {
		call(ctx, http.MethodDelete, base+"/v1/ports/lb-"+s.spec.Name)
	}
	f.cli.Delete(ctx, PrefixFiberLBStatus+s.spec.Name)
	f.log.Info("LB stopped", "lb", s.spec.Name)
}

// accept forwards each connection to the next healthy backend; a backend
// that refuses is skipped for the next (the connection is not lost).
func (f *fiberlb) accept(s *servedLB) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			hs := s.healthy(f.cfg.Fall)
			if len(hs) == 0 {
				return
			}
			s.mu.Lock()
			start := s.next
			s.next++
			s.mu.Unlock()
			var up net.Conn
			var errs []error
			for i := range hs {
				b := hs[(start+i)%len(hs)]
				if up, err = net.DialTimeout("tcp", b, 2*time.Second); err == nil {
					break
				}
				errs = append(errs, err)
			}
			if up == nil {
				f.log.Warn("no backend answers", "lb", s.spec.Name, "err", errors.Join(errs...))
				return
			}
			defer up.Close()
			go func() {
				io.Copy(up, c)
				if tc, ok := up.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}()
			io.Copy(c, up)
		}()
	}
}
