package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/photoncloud/testkit/ultracloud"
)

// Operator is a running cluster a lane drives: in-process (*Cluster) or a
// long-lived one through its supervisor (*Client, the CLI's cluster).
type Operator interface {
	// Topology is the running topology.
	Topology() ultracloud.Topology
	// SSH logs in to node as root.
	SSH(ctx context.Context, node string) (*ssh.Client, error)
	// Inject applies a fault (and records it as an event).
	Inject(ctx context.Context, f Fault) error
}

// Fault kinds (Fault.Kind), the verbs of the fault API.
const (
	FaultKill            = "kill"
	FaultRestart         = "restart"
	FaultPause           = "pause"
	FaultResume          = "resume"
	FaultLinkDown        = "link-down"
	FaultLinkUp          = "link-up"
	FaultPartition       = "partition"
	FaultHeal            = "heal"
	FaultDiskErrors      = "disk-errors"
	FaultClearDiskErrors = "clear-disk-errors"
)

// ErrBadFault: a Fault that names no known kind or lacks what its kind
// needs.
var ErrBadFault = errors.New("bad fault")

// Fault is one use of the fault API, as data (so it crosses the
// supervisor's socket).
type Fault struct {
	Kind string `json:"kind"`
	// Node is the node of kill, restart, pause, resume, link-*, disk-*.
	Node string `json:"node,omitempty"`
	// Network is the network of link-down and link-up.
	Network string `json:"network,omitempty"`
	// Groups are partition's groups.
	Groups [][]string `json:"groups,omitempty"`
	// Disk, Op and Errno are disk-errors' disk ID, operation ("read",
	// "write", "flush") and errno (default 5, EIO).
	Disk  string `json:"disk,omitempty"`
	Op    string `json:"op,omitempty"`
	Errno int    `json:"errno,omitempty"`
}

func (f Fault) String() string {
	switch f.Kind {
	case FaultPartition:
		return fmt.Sprintf("partition %v", f.Groups)
	case FaultHeal:
		return "heal"
	case FaultDiskErrors:
		return fmt.Sprintf("disk-errors %s %s %s errno %d", f.Node, f.Disk, f.Op, f.Errno)
	case FaultLinkDown, FaultLinkUp:
		return f.Kind + " " + f.Node + " " + f.Network
	}
	return f.Kind + " " + f.Node
}

// Inject applies f to the cluster through the fault API (Kill, Restart,
// Pause, …); every use is recorded as an event.
func (c *Cluster) Inject(ctx context.Context, f Fault) error {
	need := func(what, v string) error {
		if v == "" {
			return fmt.Errorf("%w: %s needs a %s", ErrBadFault, f.Kind, what)
		}
		return nil
	}
	switch f.Kind {
	case FaultKill, FaultRestart, FaultPause, FaultResume, FaultClearDiskErrors:
		if err := need("node", f.Node); err != nil {
			return err
		}
	}
	switch f.Kind {
	case FaultKill:
		return c.Kill(ctx, f.Node)
	case FaultRestart:
		_, err := c.Restart(ctx, f.Node)
		return err
	case FaultPause:
		return c.Pause(ctx, f.Node)
	case FaultResume:
		return c.Resume(ctx, f.Node)
	case FaultLinkDown, FaultLinkUp:
		if err := errors.Join(need("node", f.Node), need("network", f.Network)); err != nil {
			return err
		}
		if f.Kind == FaultLinkDown {
			return c.LinkDown(ctx, f.Node, f.Network)
		}
		return c.LinkUp(ctx, f.Node, f.Network)
	case FaultPartition:
		if len(f.Groups) == 0 {
			return fmt.Errorf("%w: partition needs groups of nodes", ErrBadFault)
		}
		return c.Partition(f.Groups...)
	case FaultHeal:
		c.Heal()
		return nil
	case FaultDiskErrors:
		if err := errors.Join(need("node", f.Node), need("disk", f.Disk), need("op (read, write or flush)", f.Op)); err != nil {
			return err
		}
		errno := f.Errno
		if errno == 0 {
			errno = 5
		}
		_, err := c.DiskErrors(ctx, f.Node, f.Disk, f.Op, errno)
		return err
	case FaultClearDiskErrors:
		_, err := c.ClearDiskErrors(ctx, f.Node)
		return err
	}
	return fmt.Errorf("%w: kind %q (known: %s)", ErrBadFault, f.Kind, strings.Join([]string{FaultKill, FaultRestart, FaultPause,
		FaultResume, FaultLinkDown, FaultLinkUp, FaultPartition, FaultHeal, FaultDiskErrors, FaultClearDiskErrors}, ", "))
}

// faultHandler serves POST /v1/fault (a Fault as JSON) and GET
// /v1/ssh/{node} (the SSH forward's address) on the supervisor's socket.
func (sv *supervisor) faultHandler(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/fault", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, "fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		c := sv.running(w)
		if c == nil {
			return
		}
		if err := c.Inject(r.Context(), f); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrBadFault) || errors.Is(err, ErrUnknownNode) {
				code = http.StatusBadRequest
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/ssh/{node}", func(w http.ResponseWriter, r *http.Request) {
		c := sv.running(w)
		if c == nil {
			return
		}
		addr, err := c.SSHAddress(r.Context(), r.PathValue("node"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(addr)
	})
}

// running is the supervisor's cluster, or nil after answering 409 when
// its machines are not running.
func (sv *supervisor) running(w http.ResponseWriter) *Cluster {
	sv.mu.Lock()
	c := sv.c
	sv.mu.Unlock()
	if c == nil {
		http.Error(w, "the machines are not running", http.StatusConflict)
	}
	return c
}

// Inject asks the supervisor to apply f (see Cluster.Inject).
func (cl *Client) Inject(ctx context.Context, f Fault) error {
	if !cl.Alive() {
		return fmt.Errorf("%s: %w", f, ErrSupervisorGone)
	}
	body, _ := json.Marshal(f)
	return cl.post(ctx, "/v1/fault", body)
}

// sshAddress is node's SSH forward, from the supervisor.
func (cl *Client) sshAddress(ctx context.Context, node string) (string, error) {
	var addr string
	err := cl.call(ctx, http.MethodGet, "/v1/ssh/"+url.PathEscape(node), &addr)
	return addr, err
}
