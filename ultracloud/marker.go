package ultracloud

import (
	"regexp"
	"strings"
)

// MarkerPrefix starts every console marker line a fixture guest prints:
//
//	ultracloud-guest: phase=<phase> role=<role> [key=value ...]
const MarkerPrefix = "ultracloud-guest: phase="

// Guest phases printed as console markers.
const (
	PhaseInit          = "init"
	PhaseModulesLoaded = "modules-loaded"
	PhaseNetworkUp     = "network-up"
	PhaseShellReady    = "shell-ready"
	PhaseSSHReady      = "ssh-ready"
	PhasePersist       = "persist"
	PhaseReady         = "ready"
	PhaseFatal         = "fatal"
)

// Marker formats one console marker line (without newline). kv are
// alternating keys and values; values have spaces replaced by '_'.
func Marker(phase, role string, kv ...string) string {
	var b strings.Builder
	b.WriteString(MarkerPrefix + phase + " role=" + role)
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(" " + kv[i] + "=" + strings.ReplaceAll(kv[i+1], " ", "_"))
	}
	return b.String()
}

// MarkerPattern matches the marker line of phase.
func MarkerPattern(phase string) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(MarkerPrefix+phase) + `( |$)`)
}
