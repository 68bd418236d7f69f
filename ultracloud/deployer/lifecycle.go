package deployer

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// The lifecycle of an enrolled node, driven by an admin and acted on by
// the node's agent (bootstrap.Agent.Serve):
//
//	active --Drain--> drain: the node stops its workloads, reports drained
//	drained --Decommission--> decommission: the node wipes its credentials,
//	    reports decommissioned, and the server revokes its token
//	decommissioned --ApproveReenrol--> the node's next phone-home enrols it
//	    again: a new attempt, a new token, desired lifecycle active
//
// Every transition is refused (ErrConflict) from any other state, with
// the state the node is in and what to do first.

// Drain asks node, which must have reported active, to stop its workloads.
func (s *PhoneHomeServer) Drain(node string) (NodeStatus, error) {
	return s.transition(node, "drain", func(ns *nodeState, cur bootstrap.Phase) error {
		if ns.Decommissioned || ns.TokenHash == "" || cur != bootstrap.PhaseActive {
			return fmt.Errorf("only an enrolled node that reported active can be drained; %s", describe(ns, cur))
		}
		ns.Desired = bootstrap.LifecycleDrain
		return nil
	})
}

// Decommission asks node, which must have reported drained, to wipe its
// credentials; its token is revoked when it reports decommissioned.
func (s *PhoneHomeServer) Decommission(node string) (NodeStatus, error) {
	return s.transition(node, "decommission", func(ns *nodeState, cur bootstrap.Phase) error {
		if ns.Decommissioned || ns.Desired != bootstrap.LifecycleDrain || cur != bootstrap.PhaseDrained {
			return fmt.Errorf("only a drained node can be decommissioned (Drain it and wait for drained); %s", describe(ns, cur))
		}
		ns.Desired = bootstrap.LifecycleDecommission
		return nil
	})
}

// ApproveReenrol lets node, which must have reported decommissioned, enrol
// once more: its next phone-home (with no secret or token) starts a new
// attempt with a new token.
func (s *PhoneHomeServer) ApproveReenrol(node string) (NodeStatus, error) {
	return s.transition(node, "reenrol", func(ns *nodeState, cur bootstrap.Phase) error {
		if !ns.Decommissioned {
			return fmt.Errorf("only a decommissioned node can be re-enrolled (Drain, Decommission, wait for decommissioned); %s", describe(ns, cur))
		}
		ns.ReenrolApproved = true
		return nil
	})
}

// describe says where a node is, for the errors of refused transitions.
func describe(ns *nodeState, cur bootstrap.Phase) string {
	switch {
	case ns.Decommissioned:
		return fmt.Sprintf("%s is decommissioned (attempt %d)", ns.Name, ns.Attempt)
	case ns.TokenHash == "":
		return fmt.Sprintf("%s is not enrolled", ns.Name)
	case cur == "":
		return fmt.Sprintf("%s has reported nothing in attempt %d (desired %s)", ns.Name, ns.Attempt, ns.lifecycle())
	}
	return fmt.Sprintf("%s is at %s in attempt %d (desired %s)", ns.Name, cur, ns.Attempt, ns.lifecycle())
}

// transition applies f to node's state under its lock, persists, and
// only then applies it in memory (as enrolments and phase reports do).
func (s *PhoneHomeServer) transition(node, name string, f func(*nodeState, bootstrap.Phase) error) (NodeStatus, error) {
	lock, ok := s.locks[node]
	if !ok {
		return NodeStatus{}, fmt.Errorf("%w: no node %q", bootstrap.ErrUnknownMachine, node)
	}
	lock.Lock()
	defer lock.Unlock()
	s.mu.Lock()
	next := nodeState{Name: node, Phases: []bootstrap.PhaseEvent{}}
	if ns := s.state[node]; ns != nil {
		next = *ns
	}
	cur, _ := next.current()
	s.mu.Unlock()
	if err := f(&next, cur.Phase); err != nil {
		return NodeStatus{}, fmt.Errorf("%w: %s %s: %w", bootstrap.ErrConflict, name, node, err)
	}
	next.Version++
	if err := s.save(next); err != nil {
		return NodeStatus{}, fmt.Errorf("persist %s of %s: %w", name, node, err)
	}
	s.mu.Lock()
	s.state[node] = &next
	s.mu.Unlock()
	s.broadcast(bootstrap.PhaseEvent{Node: node, Phase: "lifecycle", Reason: name, At: time.Now().UTC(), Attempt: next.Attempt, Run: next.Run})
	s.log.Info("lifecycle", "node", node, "transition", name)
	for _, st := range s.Nodes() {
		if st.Name == node {
			return st, nil
		}
	}
	return NodeStatus{}, nil
}

// lifecycleAllows refuses a lifecycle phase the deployer did not ask for.
func lifecycleAllows(ns *nodeState, p bootstrap.Phase) error {
	want := map[bootstrap.Phase]bootstrap.Lifecycle{
		bootstrap.PhaseDrained:        bootstrap.LifecycleDrain,
		bootstrap.PhaseDecommissioned: bootstrap.LifecycleDecommission,
	}[p]
	if want != "" && ns.lifecycle() != want {
		return fmt.Errorf("%w: %s reported %s but its desired lifecycle is %s (an admin asks for %s first)", bootstrap.ErrConflict, ns.Name, p, ns.lifecycle(), want)
	}
	return nil
}

// handleLifecycle serves an admin transition.
func (s *PhoneHomeServer) handleLifecycle(f func(string) (NodeStatus, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st, err := f(r.PathValue("name"))
		switch {
		case errors.Is(err, bootstrap.ErrUnknownMachine):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, bootstrap.ErrConflict):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusOK, st)
		}
	}
}
