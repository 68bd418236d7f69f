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

// Phases lists the forward phases in order.
func Phases() []Phase {
	return []Phase{PhasePlanFetched, PhaseBundleFetched, PhaseDiskApplied, PhaseInstalled, PhaseRebooting, PhaseFirstBoot, PhaseActive}
}

// Rank orders phases: 1 for the first of Phases, 0 for failed or unknown.
func (p Phase) Rank() int { return slices.Index(Phases(), p) + 1 }

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
}

// Desired is what a node should run.
type Desired struct {
	SystemID string `json:"systemID"`
}

// apiError is every error body.
type apiError struct {
	Error string `json:"error"`
}
