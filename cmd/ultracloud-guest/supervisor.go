package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Unit states, as systemd names them.
const (
	stateActive       = "active"
	stateActivating   = "activating"
	stateDeactivating = "deactivating"
	stateInactive     = "inactive"
	stateFailed       = "failed"
)

// Restart policy, after systemd's Restart=on-failure defaults: a unit that
// fails startLimitBurst times within startLimitInterval enters "failed".
const (
	restartDelay       = 200 * time.Millisecond
	startLimitBurst    = 5
	startLimitInterval = 10 * time.Second
	basePort           = 18000
)

// unit is one supervised fixture component.
type unit struct {
	name     string
	port     int
	fail     bool
	state    string
	sub      string
	pid      int
	restarts int
	exitCode int
	starts   []time.Time
	stopping bool
	gen      int // bumps on every start/stop so stale waiters do nothing
}

// supervisor runs fixture components and answers systemctl over a socket.
type supervisor struct {
	g     *guest
	mu    sync.Mutex
	units map[string]*unit
	order []string
	// shuttingDown is set once a power verb started the shutdown.
	shuttingDown bool
	// jobSeq numbers jobs (start/stop in progress) as systemd does.
	jobSeq int
	// doubles are the components /bin/ultracloud-doubles runs (real
	// distributed doubles: chainfire is etcd) when the kernel command line
	// names the chainfire members; the others run as plain health doubles
	// (ultracloud-guest component).
	doubles map[string]bool
}

// doublesBinary runs the components listed in doublesList.
const (
	doublesBinary = "/bin/ultracloud-doubles"
	doublesList   = "/etc/ultracloud/doubles"
)

func newSupervisor(g *guest) *supervisor {
	s := &supervisor{g: g, units: map[string]*unit{}, doubles: map[string]bool{}}
	// The distributed doubles need their cluster (ultracloud.chainfire=,
	// set by the cluster runtime); elsewhere every component is a plain
	// health double, as light as a 384 MiB machine needs.
	if g.arg("ultracloud.chainfire") == "" {
		return s
	}
	if data, err := os.ReadFile(doublesList); err == nil {
		for _, n := range strings.Fields(string(data)) {
			s.doubles[n] = true
		}
	}
	return s
}

func unitName(s string) string { return strings.TrimSuffix(s, ".service") }

func (s *supervisor) add(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = unitName(name)
	if _, dup := s.units[name]; dup {
		return
	}
	u := &unit{name: name, port: basePort + len(s.order), fail: fail, state: stateInactive, sub: "dead"}
	s.units[name] = u
	s.order = append(s.order, name)
	os.MkdirAll("/run/ultracloud/components", 0o755)
	os.WriteFile(filepath.Join("/run/ultracloud/components", name+".port"), []byte(fmt.Sprint(u.port)), 0o644)
}

func (s *supervisor) startAll() {
	s.mu.Lock()
	names := slices.Clone(s.order)
	s.mu.Unlock()
	for _, n := range names {
		s.start(n)
	}
}

// start launches the unit's process; callers must not hold mu.
func (s *supervisor) start(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok {
		return fmt.Errorf("Unit %s.service not found.", name)
	}
	if u.state == stateActive || u.state == stateActivating {
		return nil
	}
	u.starts = nil
	u.restarts = 0
	return s.launch(u)
}

// launch starts u's process; mu is held.
func (s *supervisor) launch(u *unit) error {
	logf, err := os.OpenFile(filepath.Join("/var/log", u.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	argv := []string{"/init", "component", u.name, "--port", fmt.Sprint(u.port)}
	if s.doubles[u.name] {
		argv = []string{doublesBinary, u.name, "--port", fmt.Sprint(u.port)}
	}
	if u.fail {
		argv = append(argv, "--fail")
	}
	pid, done, err := s.g.procs.start(argv, baseEnv(), []*os.File{devnull, logf, logf}, true)
	if err != nil {
		u.state, u.sub = stateFailed, "failed"
		return err
	}
	u.gen++
	u.pid, u.state, u.sub, u.stopping = pid, stateActivating, "start", false
	u.starts = append(u.starts, time.Now())
	go s.watchReady(u, u.gen)
	go s.watchExit(u, u.gen, done)
	return nil
}

// watchReady marks the unit active once its port answers (like
// Type=notify with TimeoutStartSec=infinity): a double waiting for its
// cluster's quorum stays activating until it serves, however long that
// takes under TCG, and is never left activating once it does.
func (s *supervisor) watchReady(u *unit, gen int) {
	addr := fmt.Sprintf("127.0.0.1:%d", u.port)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			s.mu.Lock()
			if u.gen == gen && u.state == stateActivating {
				u.state, u.sub = stateActive, "running"
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		stale := u.gen != gen || u.state != stateActivating
		s.mu.Unlock()
		if stale {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *supervisor) watchExit(u *unit, gen int, done <-chan syscall.WaitStatus) {
	ws := <-done
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.gen != gen {
		return
	}
	u.pid = 0
	u.exitCode = ws.ExitStatus()
	if u.stopping {
		u.state, u.sub = stateInactive, "dead"
		return
	}
	// Restart=on-failure with a start limit.
	recent := u.starts[:0]
	for _, t := range u.starts {
		if time.Since(t) < startLimitInterval {
			recent = append(recent, t)
		}
	}
	u.starts = recent
	if len(u.starts) >= startLimitBurst {
		u.state, u.sub = stateFailed, "failed"
		s.g.logf("unit %s.service failed (%s, %d starts within %s)", u.name, describe(ws), len(u.starts), startLimitInterval)
		return
	}
	u.state, u.sub = stateActivating, "auto-restart"
	u.restarts++
	go func() {
		time.Sleep(restartDelay)
		s.mu.Lock()
		defer s.mu.Unlock()
		if u.gen == gen && u.sub == "auto-restart" {
			s.launch(u)
		}
	}()
}

func (s *supervisor) stop(name string) error {
	s.mu.Lock()
	u, ok := s.units[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("Unit %s.service not loaded.", name)
	}
	pid := u.pid
	u.stopping = true
	if pid == 0 {
		u.gen++
		u.state, u.sub = stateInactive, "dead"
		s.mu.Unlock()
		return nil
	}
	u.state, u.sub = stateDeactivating, "stop-sigterm"
	s.mu.Unlock()
	syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		s.mu.Lock()
		st := u.state
		s.mu.Unlock()
		if st == stateInactive {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// unitStatus is what the supervisor tells systemctl about a unit.
type unitStatus struct {
	Name     string `json:"name"`
	Known    bool   `json:"known"`
	State    string `json:"state"`
	Sub      string `json:"sub"`
	PID      int    `json:"pid"`
	Port     int    `json:"port"`
	Restarts int    `json:"restarts"`
	ExitCode int    `json:"exitCode"`
}

func (s *supervisor) status(name string) unitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok {
		return unitStatus{Name: name, State: stateInactive, Sub: "dead"}
	}
	return unitStatus{Name: name, Known: true, State: u.state, Sub: u.sub, PID: u.pid, Port: u.port, Restarts: u.restarts, ExitCode: u.exitCode}
}

// request and response of the systemctl socket protocol (one JSON line each).
type request struct {
	Verb string `json:"verb"`
	Unit string `json:"unit"`
}

type response struct {
	Status unitStatus   `json:"status"`
	Units  []unitStatus `json:"units,omitempty"`
	Error  string       `json:"error,omitempty"`
}

func (s *supervisor) serve(path string) error {
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.handle(c)
		}
	}()
	return nil
}

func (s *supervisor) handle(c net.Conn) {
	defer c.Close()
	var req request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return
	}
	name := unitName(req.Unit)
	var resp response
	var err error
	switch req.Verb {
	case "start":
		err = s.start(name)
	case "stop":
		err = s.stop(name)
	case "restart":
		if err = s.stop(name); err == nil {
			err = s.start(name)
		}
	case verbPoweroff, verbReboot, verbHalt:
		// Answer first: the caller (a shell, a unit) is ended by the shutdown.
		json.NewEncoder(c).Encode(response{})
		c.Close()
		go s.shutdown(req.Verb)
		return
	case "status":
	case "list":
		s.mu.Lock()
		names := slices.Clone(s.order)
		s.mu.Unlock()
		for _, n := range names {
			resp.Units = append(resp.Units, s.status(n))
		}
	default:
		err = fmt.Errorf("unknown verb %q", req.Verb)
	}
	if err != nil {
		resp.Error = err.Error()
	}
	resp.Status = s.status(name)
	json.NewEncoder(c).Encode(resp)
}
