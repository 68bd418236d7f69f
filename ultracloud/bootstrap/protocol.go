package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Phase is a step of a machine's install and first boot, as it reports it.
type Phase string

// Phases, in the only order they may be reported. PhaseFailed may be
// reported at any point and ends the attempt.
const (
	PhasePlanFetched   Phase = "plan-fetched"
	PhaseBundleFetched Phase = "bundle-fetched"
	PhaseDiskApplied   Phase = "disk-applied"
	PhaseInstalled     Phase = "installed"
	PhaseRebooting     Phase = "rebooting"
	PhaseFirstBoot     Phase = "first-boot"
	PhaseActive        Phase = "active"
	PhaseFailed        Phase = "failed"
)

// Lifecycle phases: what an active node reports as the deployer takes it
// out of service (see Lifecycle). They follow PhaseActive in the order.
const (
	// PhaseDrained: the node stopped its workloads on LifecycleDrain.
	PhaseDrained Phase = "drained"
	// PhaseDecommissioned: the node wiped its credentials on
	// LifecycleDecommission; the server revokes its token on this report.
	PhaseDecommissioned Phase = "decommissioned"
)

// Lifecycle is the state the deployer wants an enrolled node in (Desired).
type Lifecycle string

// Lifecycle states, in the only order the deployer moves a node through
// them; a decommissioned node comes back only by enrolling again (a new
// attempt), which an admin must approve.
const (
	// LifecycleActive: run the desired system and its workloads.
	LifecycleActive Lifecycle = "active"
	// LifecycleDrain: stop the workloads, report PhaseDrained, stay up.
	LifecycleDrain Lifecycle = "drain"
	// LifecycleDecommission: wipe the node's credentials, report
	// PhaseDecommissioned, and wait to be enrolled again.
	LifecycleDecommission Lifecycle = "decommission"
)

// Valid reports whether l is a known lifecycle state.
func (l Lifecycle) Valid() bool {
	return l == LifecycleActive || l == LifecycleDrain || l == LifecycleDecommission
}

// Phases lists the forward phases in order.
func Phases() []Phase {
	return []Phase{PhasePlanFetched, PhaseBundleFetched, PhaseDiskApplied, PhaseInstalled, PhaseRebooting, PhaseFirstBoot, PhaseActive}
}

// LifecyclePhases lists the phases after PhaseActive, in order.
func LifecyclePhases() []Phase { return []Phase{PhaseDrained, PhaseDecommissioned} }

// Rank orders phases: 1 for the first of Phases, then the lifecycle
// phases after PhaseActive; 0 for failed or unknown.
func (p Phase) Rank() int { return slices.Index(append(Phases(), LifecyclePhases()...), p) + 1 }

// Valid reports whether p is a known phase.
func (p Phase) Valid() bool { return p == PhaseFailed || p.Rank() > 0 }

// Errors callers can test with errors.Is.
var (
	// ErrNodeFailed: a waited-on node reported "failed".
	ErrNodeFailed = errors.New("node reported failed")
	// ErrUnknownMachine: no topology node matches a machine's identity.
	ErrUnknownMachine = errors.New("unknown machine")
	// ErrForbidden: a token that does not open the requested node or bundle.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: a phase report out of order.
	ErrConflict = errors.New("conflict")
)

// DiskInfo is one disk a machine reports.
type DiskInfo struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	Serial string `json:"serial,omitempty"`
}

// Identity is what a machine sends when it phones home.
type Identity struct {
	MACs         []string   `json:"macs"`
	Serial       string     `json:"serial,omitempty"`
	MachineID    string     `json:"machineID,omitempty"`
	Disks        []DiskInfo `json:"disks,omitempty"`
	Firmware     string     `json:"firmware,omitempty"` // uefi | bios
	AgentVersion string     `json:"agentVersion,omitempty"`
	// EnrolSecret is the one-time secret handed to the machine out of band
	// (see NodeSpec.EnrolSecret).
	EnrolSecret string `json:"enrolSecret,omitempty"`
}

// Validate checks the fields that have a fixed form: the firmware is uefi
// or bios (or unset), every MAC is a MAC.
func (id Identity) Validate() error {
	var p []string
	if id.Firmware != "" && id.Firmware != "uefi" && id.Firmware != "bios" {
		p = append(p, fmt.Sprintf("firmware %q: use uefi or bios", id.Firmware))
	}
	for i, m := range id.MACs {
		if hw, err := net.ParseMAC(m); err != nil || len(hw) != 6 {
			p = append(p, fmt.Sprintf("macs[%d] %q is not a MAC such as 52:54:00:12:34:56", i, m))
		}
	}
	if len(p) > 0 {
		return fmt.Errorf("bad identity: %s", strings.Join(p, "; "))
	}
	return nil
}

// BundleRef tells a machine which bundle to fetch.
type BundleRef struct {
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Enrollment is the server's answer to a machine it recognised.
type Enrollment struct {
	Node  string `json:"node"`
	Role  string `json:"role"`
	Token string `json:"token"`
	// Plan is the node's disko plan (disko's JSON).
	Plan       []byte    `json:"plan"`
	TargetDisk string    `json:"targetDisk"`
	Bundle     BundleRef `json:"bundle"`
	SystemID   string    `json:"systemID"`
	// Run is the server's run id (see ServerConfig.RunID): the installer
	// writes it into its marker, so a disk shows which run installed it.
	Run string `json:"run,omitempty"`
}

// PhaseReport is the body of a phase report.
type PhaseReport struct {
	Phase  Phase  `json:"phase"`
	Reason string `json:"reason,omitempty"`
	// System is the store path the node activated (with PhaseActive, from
	// an agent that activates Nix closures).
	System string `json:"system,omitempty"`
}

// PhaseEvent is a recorded phase.
type PhaseEvent struct {
	Node    string    `json:"node"`
	Phase   Phase     `json:"phase"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	// Run is the run id the node was enrolled in when it reported.
	Run string `json:"run,omitempty"`
	// System is the store path the node reported activated.
	System string `json:"system,omitempty"`
}

// Desired is what a node should run, and in which lifecycle state.
type Desired struct {
	SystemID string `json:"systemID"`
	// Lifecycle is where the deployer wants the node (LifecycleActive
	// unless an admin drains or decommissions it).
	Lifecycle Lifecycle `json:"lifecycle,omitempty"`
}

// apiError is every error body.
type apiError struct {
	Error string `json:"error"`
}
