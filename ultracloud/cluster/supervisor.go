package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// ShutdownTimeout bounds the graceful power-down of each machine when a
// supervisor stops; then it is killed.
const ShutdownTimeout = 60 * time.Second

// Supervise runs the cluster of the state dir (see Prepare) until ctx ends
// or a client asks it to stop: it boots every node from the disks in the
// dir (SSH keys and /var/lib persistence on), answers the control API on
// a unix socket, records events, and on stop powers the machines down
// (ShutdownTimeout, then kill). A state dir removed under it ends it at
// once, machines killed. Its machines die with its process, so a
// killed supervisor leaves no QEMU behind. One supervisor per dir
// (ErrRunning).
func Supervise(ctx context.Context, dir string, host ultracloud.HostEnv, opts ...Option) error {
	s, err := newState(dir)
	if err != nil {
		return err
	}
	topo, err := s.readTopology()
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(s.lock(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("%w in %s (%v)", ErrRunning, s.dir, err)
	}
	sv := &supervisor{s: s, topo: topo, stop: make(chan struct{}),
		st: SupervisorStatus{State: SupervisorStarting, PID: os.Getpid(), Started: time.Now(),
			Accelerator: host.Accelerator, AccelReason: host.AccelReason}}
	sv.save()
	if err := os.MkdirAll(s.run(), 0o700); err != nil {
		return err
	}
	os.Remove(s.socket()) // stale: we hold the lock
	ln, err := net.Listen("unix", s.socket())
	if err != nil {
		return sv.fail(err)
	}
	srv := &http.Server{Handler: sv.handler()}
	go srv.Serve(ln)
	defer func() {
		srv.Close()
		os.RemoveAll(s.run())
	}()

	keys, err := LoadKeys(s.keys())
	if err != nil {
		return sv.fail(err)
	}
	events, err := os.OpenFile(s.events(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return sv.fail(err)
	}
	defer events.Close()
	var emu sync.Mutex
	record := func(e ultracloud.Event) {
		raw, _ := json.Marshal(e)
		emu.Lock()
		events.Write(append(raw, '\n'))
		emu.Unlock()
	}
	opts = append(opts, WithDir(s.nodes()), WithSSH(keys), WithPersist(), WithRunDir(s.run()), WithEvents(record))
	c, err := Start(ctx, topo, host, opts...)
	if err != nil {
		return sv.fail(err)
	}
	sv.mu.Lock()
	sv.c = c
	sv.st.State = SupervisorRunning
	sv.mu.Unlock()
	sv.save()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-sv.stop:
	case <-gone(wctx, s.topology()):
		// The state dir was removed under us (rm -rf, a test's temporary
		// dir on SIGINT): nothing to keep, nobody to answer; end now.
		c.Close()
		return fmt.Errorf("%s was removed: the cluster's machines were killed", s.dir)
	}
	sv.set(SupervisorStopping, "")
	var wg sync.WaitGroup
	for _, n := range topo.Nodes {
		m, err := c.Node(n.Name)
		if err != nil || m.Exited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			if err := m.Shutdown(sctx); err != nil {
				record(ultracloud.Event{At: time.Now(), Node: n.Name, Name: "kill", Detail: "no power-down within " + ShutdownTimeout.String() + ": " + err.Error()})
			}
		}()
	}
	wg.Wait()
	c.Close()
	sv.set(SupervisorStopped, "")
	return nil
}

// gone is closed once path no longer exists (polled twice a second).
func gone(ctx context.Context, path string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				close(ch)
				return
			}
		}
	}()
	return ch
}

type supervisor struct {
	s    state
	topo ultracloud.Topology
	stop chan struct{}
	once sync.Once

	mu sync.Mutex
	st SupervisorStatus
	c  *Cluster
}

func (sv *supervisor) save() {
	sv.mu.Lock()
	st := sv.st
	sv.mu.Unlock()
	sv.s.writeSupervisor(st)
}

func (sv *supervisor) set(state, detail string) {
	sv.mu.Lock()
	sv.st.State, sv.st.Detail = state, detail
	sv.mu.Unlock()
	sv.save()
}

func (sv *supervisor) fail(err error) error {
	sv.set(SupervisorFailed, err.Error())
	return err
}

func (sv *supervisor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(sv.status(ctx))
	})
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		sv.once.Do(func() { close(sv.stop) })
		w.WriteHeader(http.StatusAccepted)
	})
	sv.faultHandler(mux)
	return mux
}

// status asks every machine: QEMU's run state, its uptime, the SSH
// forward, and its components' unit states over the backdoor shell.
func (sv *supervisor) status(ctx context.Context) Status {
	sv.mu.Lock()
	st := Status{Dir: sv.s.dir, Topology: sv.topo.Name, Supervisor: sv.st}
	c := sv.c
	sv.mu.Unlock()
	st.Nodes = make([]NodeStatus, len(sv.topo.Nodes))
	var wg sync.WaitGroup
	for i, n := range sv.topo.Nodes {
		st.Nodes[i] = NodeStatus{Name: n.Name, Role: n.Role, State: NodeStopped, Accelerator: sv.st.Accelerator}
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodeStatus(ctx, c, n, &st.Nodes[i])
		}()
	}
	wg.Wait()
	return st
}

func nodeStatus(ctx context.Context, c *Cluster, n ultracloud.Node, ns *NodeStatus) {
	ns.Addresses = map[string]string{}
	for _, nic := range n.NICs {
		if a, err := c.Address(n.Name, nic.Network); err == nil {
			ns.Addresses[nic.Network] = a.String()
		}
	}
	m, err := c.Node(n.Name)
	if err != nil {
		ns.Detail = err.Error()
		return
	}
	if m.Exited() {
		ns.State = NodeStopped
		if err := m.Wait(ctx); err != nil {
			ns.State, ns.Detail = NodeCrashed, err.Error()
		}
		return
	}
	ns.PID, ns.BootedAt = m.PID(), c.BootedAt(n.Name)
	ns.Uptime = time.Since(ns.BootedAt).Round(time.Second).String()
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if info, err := m.QMP().Status(qctx); err != nil {
		ns.State, ns.Detail = NodeRunning, "QMP: "+err.Error()
	} else if info.Status == "paused" {
		ns.State = NodePaused
		return
	} else if info.Status == "guest-panicked" || info.Status == "internal-error" {
		ns.State, ns.Detail = NodeCrashed, info.Status
		return
	} else {
		ns.State = NodeRunning
	}
	if a, err := m.HostForward(qctx, 22); err == nil {
		ns.SSH = a
	}
	if len(n.Components) > 0 && m.Shell() != nil {
		ns.Units = units(qctx, m, n.Components)
	}
}

// units asks systemctl is-active for each component; a shell that does not
// answer in time leaves them "unknown".
func units(ctx context.Context, m *vm.Machine, comps []string) map[string]string {
	out := map[string]string{}
	for _, c := range comps {
		out[c] = "unknown"
	}
	r, err := m.Shell().Execute(ctx, "systemctl is-active "+strings.Join(comps, " "))
	if err != nil {
		return out
	}
	lines := strings.Fields(string(r.Stdout))
	for i, c := range comps {
		if i < len(lines) {
			out[c] = lines[i]
		}
	}
	return out
}

// alive reports whether a supervisor holds the state dir's lock.
func alive(s state) bool {
	f, err := os.Open(s.lock())
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
