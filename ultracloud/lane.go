package ultracloud

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// Requirement says what a lane needs from the host's accelerator.
type Requirement string

// Lane requirements.
const (
	// TCGOK lanes run (slower) under TCG software emulation.
	TCGOK Requirement = "tcg-ok"
	// KVMRequired lanes stop at preflight unless KVM is usable.
	KVMRequired Requirement = "kvm-required"
)

// RunConfig is what every lane run gets from its caller.
type RunConfig struct {
	// WorkDir holds the run's state: disks, sockets, logs, the report.
	WorkDir string
	// Host is the preflight verdict; its Accelerator is the one to use.
	Host HostEnv
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// Progress, when non-nil, receives a live view for terminals.
	Progress io.Writer
	// KeepVMs leaves machines running after the lane ends (debugging).
	KeepVMs bool
}

// Log returns the configured logger or one that discards.
func (c RunConfig) Log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// RunFunc runs a lane and returns its report. A lane that ran and failed
// returns a report with Status fail and a nil error; an error means the lane
// could not run at all (bad options, missing tools).
type RunFunc func(ctx context.Context, cfg RunConfig) (*Report, error)

// Lane is one documented validation lane.
type Lane struct {
	// Name is the lane's name as the testing document spells it.
	Name string
	// Summary is one line on what the lane proves.
	Summary string
	// SeedCommand is the command the testing document gives for it, e.g.
	// "nix run ./nix/test-cluster#cluster -- baremetal-iso".
	SeedCommand string
	// Topology names the canonical topology it boots, if any.
	Topology string
	// Requires is TCGOK or KVMRequired.
	Requires Requirement
	// Run runs the lane.
	Run RunFunc
}

// Registry holds lanes by name. The zero value is empty and ready to use.
type Registry struct {
	lanes map[string]Lane
}

// NewRegistry returns a registry holding lanes.
func NewRegistry(lanes ...Lane) (*Registry, error) {
	r := &Registry{}
	for _, l := range lanes {
		if err := r.Register(l); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a lane. Names must be unique and every lane must be able to
// run: a lane without Run is refused.
func (r *Registry) Register(l Lane) error {
	switch {
	case l.Name == "":
		return fmt.Errorf("%w: lane without a name", ErrInvalid)
	case l.Run == nil:
		return fmt.Errorf("%w: lane %q has no Run; only lanes that run can be registered", ErrInvalid, l.Name)
	case l.Requires != TCGOK && l.Requires != KVMRequired:
		return fmt.Errorf("%w: lane %q: Requires %q, want %q or %q", ErrInvalid, l.Name, l.Requires, TCGOK, KVMRequired)
	}
	if r.lanes == nil {
		r.lanes = map[string]Lane{}
	}
	if _, dup := r.lanes[l.Name]; dup {
		return fmt.Errorf("%w: lane %q registered twice", ErrInvalid, l.Name)
	}
	r.lanes[l.Name] = l
	return nil
}

// Lookup returns the lane called name.
func (r *Registry) Lookup(name string) (Lane, error) {
	if l, ok := r.lanes[name]; ok {
		return l, nil
	}
	return Lane{}, fmt.Errorf("%w: %q (known: %s)", ErrUnknownLane, name, strings.Join(r.Names(), ", "))
}

// Names returns the registered lane names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.lanes))
	for n := range r.lanes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Lanes returns the registered lanes sorted by name.
func (r *Registry) Lanes() []Lane {
	var out []Lane
	for _, n := range r.Names() {
		out = append(out, r.lanes[n])
	}
	return out
}
