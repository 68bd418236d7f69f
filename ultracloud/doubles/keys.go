package doubles

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The key layout in chainfire.
const (
	// PrefixNodes holds one NodeRecord per live worker, under its
	// node-agent's heartbeat lease: the key vanishes when heartbeats stop.
	PrefixNodes = "/ultracloud/nodes/"
	// PrefixServices holds one ServiceSpec per service to place.
	PrefixServices = "/ultracloud/services/"
	// PrefixAssignments maps "<service>/<index>" to the node that runs
	// that instance (written by the fleet-scheduler's leader only).
	PrefixAssignments = "/ultracloud/assignments/"
	// PrefixRunning holds "<node>/<service>/<index>" → Instance for every
	// instance a node-agent runs, under its heartbeat lease.
	PrefixRunning = "/ultracloud/running/"
	// KeyElection is the fleet-scheduler's election prefix.
	KeyElection = "/ultracloud/fleet-scheduler/leader"
	// PrefixFlareDB holds flaredb's keys.
	PrefixFlareDB = "/flaredb/kv/"
	// PrefixIAMTokens holds iam's tokens by their SHA-256.
	PrefixIAMTokens = "/iam/tokens/"
)

// Node states a node-agent reports.
const (
	NodeReady    = "ready"
	NodeDegraded = "degraded"
)

// NodeRecord is what a node-agent publishes about its node.
type NodeRecord struct {
	Node   string    `json:"node"`
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Addr   string    `json:"addr,omitempty"`
	Since  time.Time `json:"since"`
}

// ServiceSpec is a service the fleet-scheduler places.
type ServiceSpec struct {
	Replicas int `json:"replicas"`
}

// Instance is one running service instance, as its node-agent reports it.
type Instance struct {
	Service string `json:"service"`
	Index   int    `json:"index"`
	Node    string `json:"node"`
	// Addr is host:port of the instance's HTTP endpoint on the cluster
	// network; GET / answers with this Instance as JSON.
	Addr string `json:"addr"`
}

// InstanceID is "<service>/<index>".
func InstanceID(service string, index int) string { return fmt.Sprintf("%s/%d", service, index) }

// ParseInstanceID splits "<service>/<index>".
func ParseInstanceID(id string) (service string, index int, err error) {
	svc, idx, ok := strings.Cut(id, "/")
	if !ok || svc == "" || strings.Contains(idx, "/") {
		return "", 0, fmt.Errorf("instance id %q: want SERVICE/INDEX", id)
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 {
		return "", 0, fmt.Errorf("instance id %q: index %q is not a non-negative number", id, idx)
	}
	return svc, n, nil
}
