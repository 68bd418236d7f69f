package bootstrap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
)

// LifecycleHooks are what a node does as the deployer moves it through its
// lifecycle (see Lifecycle). Nil hooks do nothing.
type LifecycleHooks struct {
	// Drain stops the node's workloads (LifecycleDrain).
	Drain func(context.Context) error
	// Decommission wipes what the deployer gave the node: its token and
	// server URL on disk (LifecycleDecommission).
	Decommission func(context.Context) error
	// Enrolled keeps the credentials of a re-enrolment (on disk).
	Enrolled func(context.Context, *Enrollment) error
	// Activate starts the workloads again once a re-enrolled node is
	// active.
	Activate func(context.Context) error
	// State records each state the node reaches, for whoever inspects
	// the node (the fixture writes /run/ultracloud/lifecycle.json).
	State func(NodeLifecycle)
}

// NodeLifecycle is the node's own view of its lifecycle.
type NodeLifecycle struct {
	Node string `json:"node"`
	// State is active, drained, decommissioned (or enrolling while a
	// decommissioned node waits for an admin's approval).
	State string `json:"state"`
	// Enrolments counts the enrolments this agent went through (1 after
	// the install).
	Enrolments int       `json:"enrolments"`
	SystemID   string    `json:"systemID"`
	At         time.Time `json:"at"`
}

// Node states of NodeLifecycle.
const (
	NodeActive         = "active"
	NodeDrained        = "drained"
	NodeDecommissioned = "decommissioned"
)

// Serve follows the deployer after FirstBoot until ctx ends: it asks for
// the desired state every Interval and acts on it. On LifecycleDrain it
// runs the Drain hook and reports drained; on LifecycleDecommission the
// Decommission hook, reports decommissioned and forgets its (now revoked)
// token; then it phones home with Identity until an admin approves the
// re-enrolment, keeps the new credentials (Enrolled), checks the desired
// system is the installed one, starts its workloads (Activate) and
// reports active in the new attempt. Errors of one round are logged and
// retried the next; a failed hook is reported as failed and ends Serve.
func (a *Agent) Serve(ctx context.Context) error {
	if a.installed == "" {
		return errors.New("agent: Serve runs after a successful FirstBoot")
	}
	every := cmp.Or(a.Interval, time.Second)
	st := NodeLifecycle{Node: a.Node, State: NodeActive, Enrolments: 1, SystemID: a.installed}
	a.note(&st, NodeActive)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
		var err error
		switch st.State {
		case NodeActive, NodeDrained:
			err = a.follow(ctx, &st)
		case NodeDecommissioned:
			err = a.reenrol(ctx, &st)
		}
		var hook *hookError
		if errors.As(err, &hook) {
			return a.fail(ctx, err)
		}
		if err != nil && a.Logger != nil {
			a.Logger.Info("lifecycle: will retry", "state", st.State, "err", err)
		}
	}
}

// hookError is a failed hook: the node cannot do what it was asked.
type hookError struct{ err error }

func (h *hookError) Error() string { return h.err.Error() }
func (h *hookError) Unwrap() error { return h.err }

func run(ctx context.Context, name string, f func(context.Context) error) error {
	if f == nil {
		return nil
	}
	if err := f(ctx); err != nil {
		return &hookError{fmt.Errorf("%s: %w", name, err)}
	}
	return nil
}

func (a *Agent) note(st *NodeLifecycle, state string) {
	st.State, st.At = state, time.Now().UTC()
	if a.Lifecycle.State != nil {
		a.Lifecycle.State(*st)
	}
	if a.Logger != nil {
		a.Logger.Info("lifecycle", "node", a.Node, "state", state, "enrolments", st.Enrolments)
	}
}

// follow acts on the desired lifecycle of an enrolled node.
func (a *Agent) follow(ctx context.Context, st *NodeLifecycle) error {
	d, err := a.Client.Desired(ctx, a.Node)
	if err != nil {
		return err
	}
	// A decommission finds the node drained first: an agent restarted
	// after its drain re-runs it (the server answers the repeated drained
	// report as already recorded).
	if (d.Lifecycle == LifecycleDrain || d.Lifecycle == LifecycleDecommission) && st.State == NodeActive {
		if err := run(ctx, "drain", a.Lifecycle.Drain); err != nil {
			return err
		}
		if err := a.Client.ReportPhase(ctx, a.Node, PhaseDrained, ""); err != nil {
			return err
		}
		a.note(st, NodeDrained)
	}
	if d.Lifecycle == LifecycleDecommission && st.State == NodeDrained {
		if err := run(ctx, "decommission", a.Lifecycle.Decommission); err != nil {
			return err
		}
		if err := a.Client.ReportPhase(ctx, a.Node, PhaseDecommissioned, ""); err != nil {
			return err
		}
		a.Client.ForgetToken()
		a.note(st, NodeDecommissioned)
	}
	return nil
}

// reenrol phones home until the deployer enrols the node again, then
// reports it active; a round that enrolled but could not report retries
// only the report (the client holds the new token).
func (a *Agent) reenrol(ctx context.Context, st *NodeLifecycle) error {
	if a.Client.Token() == "" {
		e, err := a.Client.PhoneHome(ctx, a.Identity)
		if err != nil {
			return err // ErrForbidden until an admin approves
		}
		if e.Node != a.Node {
			return &hookError{fmt.Errorf("re-enrolled as %q, but this is %q", e.Node, a.Node)}
		}
		if a.Lifecycle.Enrolled != nil {
			if err := a.Lifecycle.Enrolled(ctx, e); err != nil {
				return &hookError{fmt.Errorf("keep credentials: %w", err)}
			}
		}
		if e.SystemID != a.installed {
			return &hookError{fmt.Errorf("re-enrolled with desired system %q, installed %q: a reinstall is needed", e.SystemID, a.installed)}
		}
	}
	if err := run(ctx, "activate", a.Lifecycle.Activate); err != nil {
		return err
	}
	if err := a.Client.ReportPhase(ctx, a.Node, PhaseActive, ""); err != nil {
		return err
	}
	st.Enrolments++
	a.note(st, NodeActive)
	return nil
}
