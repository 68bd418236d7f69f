package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// matrix runs fresh-matrix's verbs on the running cluster of state: the
// whole matrix passes, both cells, one JUnit testcase per check; then one
// run fails both cells, each broken on purpose just before one check:
// fiberlb stopped before the cut-off check, the workers' kernel NBD
// client unloaded before the volume check; a user's cell with a check not
// built is skipped in it. (Breaking the DNS, spread and object checks was
// measured by hand, see #16's notes: each more broken run costs CI 1-3
// minutes.)
func matrix(t *testing.T, state string) {
	work := t.TempDir()
	begin := time.Now()
	out, errOut, code := cli(t, "cluster", "matrix", "--state", state, "--work-dir", work)
	t.Logf("matrix in %v:\n%s\n%s", time.Since(begin).Round(time.Second), out, errOut)
	if code != 0 || !strings.Contains(out, "lane fresh-matrix: pass") {
		t.Errorf("matrix: exit %d, want 0 (both cells pass)", code)
	}
	var r ultracloud.Report
	raw, _ := os.ReadFile(filepath.Join(work, "report", "report.json"))
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	steps := map[string]ultracloud.Status{}
	for _, s := range r.Steps {
		steps[s.Name] = s.Status
		t.Logf("step %-60s %-6s %6.1fs %s", s.Name, s.Status, s.Finished.Sub(s.Started).Seconds(), s.Reason)
	}
	for _, c := range lanes.MatrixCells() {
		for _, ch := range c.Checks {
			want := ultracloud.StatusPass
			if got := steps[c.Name+"/"+ch.Name]; got != want {
				t.Errorf("%s/%s: %q, want %q", c.Name, ch.Name, got, want)
			}
		}
	}
	junit, _ := os.ReadFile(filepath.Join(work, "report", "junit.xml"))
	if !strings.Contains(string(junit), lanes.CellNetwork+"/backend cut off is taken out") || !strings.Contains(string(junit), lanes.CellStorage+"/volume shared across workers") {
		t.Errorf("junit.xml has no testcase per cell check:\n%s", junit)
	}

	// Broken on purpose, through the guests' units.
	ctx := context.Background()
	cl, err := cluster.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	host, err := vm.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One run breaks each cell at one check (the hooks run just before
	// it), with a user's cell whose check is not built.
	type broken struct {
		check, cause  string // cause: in the failed check's reason
		breakIt, heal string // shell commands on the nodes
		nodes         func(m *lanes.MatrixEnv) []string
	}
	cases := []broken{
		{lanes.CellNetwork + "/backend cut off is taken out", "invariant violated",
			"systemctl stop fiberlb", "systemctl start fiberlb",
			func(m *lanes.MatrixEnv) []string { return m.Nodes("fiberlb")[:1] }},
		{lanes.CellStorage + "/volume shared across workers", "no kernel NBD client",
			"rmmod nbd", "grep -q '^nbd ' /proc/modules || insmod $(grep /nbd.ko /etc/ultracloud/modules.order)",
			func(m *lanes.MatrixEnv) []string { return m.Nodes("plasmavmc") }},
	}
	var envs []*lanes.MatrixEnv
	hooks := map[string]func(context.Context, *lanes.MatrixEnv) error{}
	for _, c := range cases {
		hooks[c.check] = func(ctx context.Context, m *lanes.MatrixEnv) error {
			envs = append(envs, m)
			for _, n := range c.nodes(m) {
				if _, err := m.Shell(ctx, n, c.breakIt); err != nil {
					return err
				}
			}
			return nil
		}
	}
	user := lanes.MatrixCell{Name: "user", Bundle: []string{"plasmavmc"}, Checks: []lanes.MatrixCheck{{Name: "not built"}}}
	o := lanes.MatrixOptions{Cluster: cl, Cells: append(lanes.MatrixCells(), user), Hooks: hooks}
	br, err := lanes.FreshMatrix(ctx, ultracloud.RunConfig{Host: host, WorkDir: t.TempDir()}, o)
	for i, m := range envs {
		for _, n := range cases[i].nodes(m) {
			if _, herr := m.Shell(context.Background(), n, cases[i].heal); herr != nil {
				t.Errorf("heal %s on %s: %v", cases[i].check, n, herr)
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	steps = map[string]ultracloud.Status{}
	for _, s := range br.Steps {
		steps[s.Name] = s.Status
		t.Logf("broken: step %-60s %-6s %6.1fs %s", s.Name, s.Status, s.Finished.Sub(s.Started).Seconds(), s.Reason)
		for _, c := range cases {
			if s.Name == c.check && (s.Status != ultracloud.StatusFail || !strings.Contains(s.Reason, c.cause)) {
				t.Errorf("check %s: %s, %q; want a failure saying %q", c.check, s.Status, s.Reason, c.cause)
			}
		}
	}
	for _, c := range cases {
		if !strings.Contains(br.Reason, c.check) {
			t.Errorf("the run's reason %q does not name %q", br.Reason, c.check)
		}
	}
	if br.Status != ultracloud.StatusFail || steps["user/not built"] != ultracloud.StatusSkip {
		t.Errorf("status %s, user/not built %q; want a failure with the check not built skipped", br.Status, steps["user/not built"])
	}
	t.Logf("failed as it must: %s", br.Reason)
}
