package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// DefaultStateDir is where the CLI keeps its cluster.
const DefaultStateDir = "ultracloud-work/cluster"

// Sentinel errors of a persistent cluster.
var (
	// ErrNoCluster: the state dir holds no cluster.
	ErrNoCluster = errors.New("no cluster")
	// ErrRunning: a supervisor already owns the state dir.
	ErrRunning = errors.New("cluster already running")
	// ErrSupervisorGone: the supervisor died without stopping the cluster.
	ErrSupervisorGone = errors.New("supervisor is gone")
	// ErrOtherTopology: the state dir holds a cluster of another topology.
	ErrOtherTopology = errors.New("state dir holds another topology")
)

// Supervisor states (SupervisorStatus.State).
const (
	SupervisorStarting = "starting"
	SupervisorRunning  = "running"
	SupervisorStopping = "stopping"
	SupervisorStopped  = "stopped"
	SupervisorFailed   = "failed"
	SupervisorGone     = "gone"
)

// Node states (NodeStatus.State).
const (
	NodeRunning = "running"
	NodePaused  = "paused"
	NodeStopped = "stopped"
	NodeCrashed = "crashed"
)

// Status is what `ultracloud cluster status --json` prints.
type Status struct {
	Dir        string           `json:"dir"`
	Topology   string           `json:"topology"`
	Supervisor SupervisorStatus `json:"supervisor"`
	Nodes      []NodeStatus     `json:"nodes"`
}

// SupervisorStatus is the supervisor's state, as it wrote it last (or
// "gone" when it died without saying so).
type SupervisorStatus struct {
	State       string           `json:"state"`
	PID         int              `json:"pid,omitempty"`
	Started     time.Time        `json:"started,omitzero"`
	Accelerator ultracloud.Accel `json:"accelerator,omitempty"`
	AccelReason string           `json:"accel_reason,omitempty"`
	Detail      string           `json:"detail,omitempty"`
}

// NodeStatus is one node.
type NodeStatus struct {
	Name        string            `json:"name"`
	Role        ultracloud.Role   `json:"role,omitempty"`
	State       string            `json:"state"`
	PID         int               `json:"pid,omitempty"`
	BootedAt    time.Time         `json:"booted_at,omitzero"`
	Uptime      string            `json:"uptime,omitempty"`
	Accelerator ultracloud.Accel  `json:"accelerator,omitempty"`
	Addresses   map[string]string `json:"addresses,omitempty"`
	SSH         string            `json:"ssh,omitempty"`
	Units       map[string]string `json:"units,omitempty"`
	Detail      string            `json:"detail,omitempty"`
}

// Running counts the nodes in state running.
func (s Status) Running() int {
	n := 0
	for _, node := range s.Nodes {
		if node.State == NodeRunning {
			n++
		}
	}
	return n
}

// state is the layout of a state dir.
type state struct{ dir string }

func (s state) topology() string   { return filepath.Join(s.dir, "topology.json") }
func (s state) supervisor() string { return filepath.Join(s.dir, "supervisor.json") }
func (s state) lock() string       { return filepath.Join(s.dir, "supervisor.lock") }
func (s state) log() string        { return filepath.Join(s.dir, "supervisor.log") }
func (s state) events() string     { return filepath.Join(s.dir, "events.jsonl") }
func (s state) keys() string       { return filepath.Join(s.dir, "ssh") }
func (s state) nodes() string      { return filepath.Join(s.dir, "nodes") }

// ConsoleLog is node's console log in the state dir.
func (s state) consoleLog(node string) string {
	return filepath.Join(s.nodes(), node, "console.log")
}

// run is the short directory of the supervisor's unix sockets (machines,
// switches, the control API): in the state dir when its path is short,
// else under the temporary directory with a name derived from the state
// dir, so clean finds it either way.
func (s state) run() string {
	in := filepath.Join(s.dir, "run")
	if len(in) <= 60 {
		return in
	}
	sum := sha256.Sum256([]byte(s.dir))
	return filepath.Join(os.TempDir(), "uc-run-"+hex.EncodeToString(sum[:6]))
}

func (s state) socket() string { return filepath.Join(s.run(), "supervisor.sock") }

func newState(dir string) (state, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return state{}, err
	}
	return state{dir: abs}, nil
}

// readTopology is the cluster's topology, or ErrNoCluster.
func (s state) readTopology() (ultracloud.Topology, error) {
	raw, err := os.ReadFile(s.topology())
	if errors.Is(err, os.ErrNotExist) {
		return ultracloud.Topology{}, fmt.Errorf("%w in %s; run `ultracloud cluster start`", ErrNoCluster, s.dir)
	}
	if err != nil {
		return ultracloud.Topology{}, err
	}
	topo, err := ultracloud.ParseTopology(raw)
	if err != nil {
		return ultracloud.Topology{}, fmt.Errorf("%s: %w; run `ultracloud cluster clean` to start over", s.topology(), err)
	}
	return topo, nil
}

func (s state) readSupervisor() SupervisorStatus {
	var st SupervisorStatus
	raw, err := os.ReadFile(s.supervisor())
	if err != nil || json.Unmarshal(raw, &st) != nil {
		return SupervisorStatus{State: SupervisorStopped}
	}
	return st
}

func (s state) writeSupervisor(st SupervisorStatus) error {
	raw, _ := json.MarshalIndent(st, "", "  ")
	tmp := s.supervisor() + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.supervisor())
}

// Prepare makes dir the state dir of a cluster of topo: it writes the
// topology on first use and keeps what is there (disks, keys, logs) when
// the dir already holds the same topology, so a stopped cluster starts
// again from its disks. A different topology is ErrOtherTopology (nothing
// is touched); a running supervisor is ErrRunning.
func Prepare(dir string, topo ultracloud.Topology) error {
	s, err := newState(dir)
	if err != nil {
		return err
	}
	if err := topo.Validate(); err != nil {
		return err
	}
	if alive(s) {
		return fmt.Errorf("%w in %s; `ultracloud cluster status` shows it, `ultracloud cluster stop` ends it", ErrRunning, s.dir)
	}
	if old, err := s.readTopology(); err == nil {
		a, _ := json.Marshal(old)
		b, _ := json.Marshal(topo)
		if string(a) != string(b) {
			return fmt.Errorf("%w: %s holds topology %q; run `ultracloud cluster clean` first (it removes its disks) or pick another --state", ErrOtherTopology, s.dir, old.Name)
		}
		return nil
	} else if !errors.Is(err, ErrNoCluster) {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(topo, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(s.topology(), append(raw, '\n'), 0o644)
}
