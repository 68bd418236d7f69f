package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestTopologyJSON(t *testing.T) {
	out, err := run(t, "topology", "fresh-cluster", "--json")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := ultracloud.ParseTopology([]byte(out))
	if err != nil || len(topo.Nodes) != 6 {
		t.Fatalf("%v %d", err, len(topo.Nodes))
	}
}

func TestTopologyUnknownNamesKnown(t *testing.T) {
	_, err := run(t, "topology", "fresh")
	if err == nil || !strings.Contains(err.Error(), "fresh-cluster") {
		t.Fatalf("%v", err)
	}
}

func TestEnvJSON(t *testing.T) {
	out, err := run(t, "env", "--json", "--accel", "tcg")
	if err != nil {
		t.Fatal(err)
	}
	var env ultracloud.HostEnv
	if err := json.Unmarshal([]byte(out), &env); err != nil || env.Accelerator != ultracloud.AccelTCG {
		t.Fatalf("%v %+v", err, env)
	}
	if _, err := run(t, "env", "--accel", "hvf"); err == nil || !strings.Contains(err.Error(), "kvm, tcg or auto") {
		t.Fatalf("bad accel: %v", err)
	}
}

func TestListings(t *testing.T) {
	for _, args := range [][]string{{"profiles"}, {"lanes"}, {"topology"}, {"version"}, {"env"}} {
		out, err := run(t, args...)
		if err != nil || out == "" {
			t.Fatalf("%v: %v %q", args, err, out)
		}
	}
	out, _ := run(t, "profiles")
	if !strings.Contains(out, "nix-agent (control-plane)") {
		t.Fatal(out)
	}
	out, _ = run(t, "lanes")
	if !strings.Contains(out, "LANE") {
		t.Fatal(out)
	}
}

// Help names only verbs that run: every operational verb of the seed that
// is not a subcommand yet is absent from `cluster --help`.
func TestClusterHelpListsOnlyRunnableVerbs(t *testing.T) {
	out, err := run(t, "cluster", "--help")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, c := range newCluster().Commands() {
		have[c.Name()] = true
	}
	seedVerbs := []string{"status", "logs", "ssh", "stop", "clean", "start", "fresh-smoke", "fresh-demo-vm-webapp", "fresh-matrix",
		"demo-vm-webapp", "serve-vm-webapp", "matrix", "bench-storage", "fresh-bench-storage", "baremetal-iso"}
	for _, v := range seedVerbs {
		if !have[v] && regexp.MustCompile(`(^|[^\w-])`+regexp.QuoteMeta(v)+`($|[^\w-])`).MatchString(out) {
			t.Errorf("cluster --help mentions %q, which is not a verb yet:\n%s", v, out)
		}
	}
	if !have["baremetal-iso"] || !strings.Contains(out, "baremetal-iso") {
		t.Fatalf("baremetal-iso missing from help:\n%s", out)
	}
}

// `cluster <lane>` exists for exactly the registered lanes, beside the
// operational verbs (whose names no lane may take).
func TestClusterVerbsAreTheRegistry(t *testing.T) {
	reg, err := lanes.Registry()
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	for _, c := range opsVerbs() {
		ops[c.Name()] = true
	}
	for _, name := range reg.Names() {
		if ops[name] != onTheCluster(name) {
			t.Fatalf("lane %q: operational verb %v, but listed as a lane on the cluster %v", name, ops[name], onTheCluster(name))
		}
	}
	var verbs []string
	for _, c := range newCluster().Commands() {
		if !ops[c.Name()] || onTheCluster(c.Name()) {
			verbs = append(verbs, c.Name())
		}
	}
	slices.Sort(verbs)
	if !slices.Equal(verbs, reg.Names()) {
		t.Fatalf("cluster verbs %v, registry %v", verbs, reg.Names())
	}
	// A verb is the lane's driver: same flags, same exit codes.
	if _, err := run(t, "cluster", "baremetal-iso", "-no-such-flag"); err == nil {
		t.Fatal("an unknown driver flag was accepted")
	} else if ee, ok := err.(*exitError); !ok || ee.code != lanes.ExitCouldNotRun {
		t.Fatalf("unknown flag: %v", err)
	}
}
