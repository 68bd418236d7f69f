package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// enrolledRoot enrols bm-1 and lays out its installed root as the
// installer would, and returns the root.
func enrolledRoot(t *testing.T, ts *testServer, id bootstrap.Identity) string {
	t.Helper()
	c := fastClient(ts.url)
	e, err := c.PhoneHome(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	marker, _ := json.Marshal(bootstrap.Installed{Node: e.Node, SystemID: e.SystemID})
	for name, data := range map[string]string{bootstrap.SystemIDFile: e.SystemID + "\n", bootstrap.InstalledMarker: string(marker),
		bootstrap.TokenFile: e.Token + "\n", bootstrap.ServerFile: ts.url + "\n"} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	return root
}

// The whole lifecycle between a real server and a real agent over HTTP:
// active → drain → decommission (token revoked, wiped on the node) →
// refused until approved → re-enrolled (attempt 2) → active; the node's
// own states are recorded in order, and the server keeps the state across
// a restart in the middle.
func TestLifecycleEndToEnd(t *testing.T) {
	b := systemBundle(t)
	state := t.TempDir()
	spec := installerNode(t, b)
	spec.EnrolSecret = "one-time"
	ts := startServerRun(t, state, []NodeSpec{spec}, "run-1")
	id := bootstrap.Identity{MACs: []string{"52:54:00:00:01:01"}, EnrolSecret: "one-time"}
	// The agent reads its client from the root, as on a real node.
	root := enrolledRoot(t, ts, id)
	var mu sync.Mutex
	var states []string
	var drained, wiped, activated int
	agent := &bootstrap.Agent{RootDir: root, Identity: bootstrap.Identity{MACs: id.MACs}, Interval: 20 * time.Millisecond,
		Lifecycle: bootstrap.LifecycleHooks{
			Drain: func(context.Context) error { mu.Lock(); drained++; mu.Unlock(); return nil },
			Decommission: func(context.Context) error {
				mu.Lock()
				wiped++
				mu.Unlock()
				return os.Remove(filepath.Join(root, bootstrap.TokenFile))
			},
			Enrolled: func(_ context.Context, e *bootstrap.Enrollment) error {
				return os.WriteFile(filepath.Join(root, bootstrap.TokenFile), []byte(e.Token+"\n"), 0o600)
			},
			Activate: func(context.Context) error { mu.Lock(); activated++; mu.Unlock(); return nil },
			State: func(s bootstrap.NodeLifecycle) {
				mu.Lock()
				states = append(states, s.State)
				mu.Unlock()
			},
		}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := agent.FirstBoot(ctx); err != nil {
		t.Fatal(err)
	}
	// noted waits until the agent's own states end with suffix.
	noted := func(suffix string) string {
		var got string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			got = strings.Join(states, " ")
			mu.Unlock()
			if strings.HasSuffix(got, suffix) {
				break
			}
		}
		return got
	}
	served := make(chan error, 1)
	var stop context.CancelFunc
	serve := func() {
		var sctx context.Context
		sctx, stop = context.WithCancel(ctx)
		go func() { served <- agent.Serve(sctx) }()
	}
	serve()
	defer func() { stop(); <-served }()

	wait := func(p bootstrap.Phase, attempt int) bootstrap.PhaseEvent {
		t.Helper()
		for {
			st := ts.Nodes()[0]
			if st.Attempt >= attempt {
				wctx, wc := context.WithTimeout(ctx, 10*time.Second)
				ev, err := ts.WaitPhase(wctx, "bm-1", p)
				wc()
				if err != nil {
					t.Fatal(err)
				}
				return ev
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	oldToken, _ := os.ReadFile(filepath.Join(root, bootstrap.TokenFile))

	// Out of order: decommission and re-enrolment before a drain.
	if _, err := ts.Decommission("bm-1"); !errors.Is(err, bootstrap.ErrConflict) || !strings.Contains(err.Error(), "Drain it") {
		t.Fatalf("decommission of an active node: %v", err)
	}
	if _, err := ts.ApproveReenrol("bm-1"); !errors.Is(err, bootstrap.ErrConflict) {
		t.Fatalf("re-enrol of an active node: %v", err)
	}
	if _, err := ts.Drain("nope"); !errors.Is(err, bootstrap.ErrUnknownMachine) {
		t.Fatalf("drain of an unknown node: %v", err)
	}

	if st, err := ts.Drain("bm-1"); err != nil || st.Lifecycle != bootstrap.LifecycleDrain {
		t.Fatalf("drain: %+v %v", st, err)
	}
	wait(bootstrap.PhaseDrained, 1)
	// The server records the report before the agent hears the answer:
	// stop the agent only once it noted drained itself.
	noted("active drained")

	// The server restarts between drain and decommission: nothing is lost.
	ts.stop()
	ts = startServerRun(t, state, []NodeSpec{spec}, "run-1")
	if st := ts.Nodes()[0]; st.Phase != bootstrap.PhaseDrained || st.Lifecycle != bootstrap.LifecycleDrain {
		t.Fatalf("after restart: %+v", st)
	}
	// The agent's server URL is the old listener; point a new agent of the
	// same node at the restarted server, as a node would after a DNS change.
	stop()
	<-served
	agent.Client = bootstrap.NewClient(ts.url, bootstrap.WithToken(strings.TrimSpace(string(oldToken))), bootstrap.WithRetries(2, 50*time.Millisecond))
	serve()
	// A fresh Serve starts from active: it sees drain again and re-reports
	// drained (a retried report, already recorded).
	if _, err := ts.Decommission("bm-1"); err != nil {
		t.Fatal(err)
	}
	wait(bootstrap.PhaseDecommissioned, 1)
	if _, err := os.Stat(filepath.Join(root, bootstrap.TokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("token still on the node after decommission: %v", err)
	}
	st := ts.Nodes()[0]
	if !st.Decommissioned || st.Enrolled {
		t.Fatalf("server after decommission: %+v", st)
	}
	// The revoked token opens nothing.
	if _, err := bootstrap.NewClient(ts.url, bootstrap.WithToken(strings.TrimSpace(string(oldToken)))).Desired(ctx, "bm-1"); !errors.Is(err, bootstrap.ErrForbidden) {
		t.Fatalf("revoked token: %v", err)
	}
	// Without approval the node cannot enrol, even with the admin-free path.
	time.Sleep(100 * time.Millisecond)
	if st := ts.Nodes()[0]; st.Attempt != 1 {
		t.Fatalf("enrolled again without approval: attempt %d", st.Attempt)
	}
	if _, err := ts.ApproveReenrol("bm-1"); err != nil {
		t.Fatal(err)
	}
	ev := wait(bootstrap.PhaseActive, 2)
	if ev.Attempt != 2 {
		t.Fatalf("active in attempt %d", ev.Attempt)
	}
	newToken, _ := os.ReadFile(filepath.Join(root, bootstrap.TokenFile))
	if len(newToken) == 0 || string(newToken) == string(oldToken) {
		t.Fatalf("no new token on the node: %q", newToken)
	}
	if st := ts.Nodes()[0]; st.Decommissioned || !st.Enrolled || st.Lifecycle != bootstrap.LifecycleActive || st.Phase != bootstrap.PhaseActive {
		t.Fatalf("server after re-enrolment: %+v", st)
	}
	// The agent notes its state once the server acknowledged the report.
	got := noted("decommissioned active")
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(got, "active drained active drained decommissioned active") || drained != 2 || wiped != 1 || activated != 1 {
		t.Fatalf("node states %q; drained %d wiped %d activated %d", got, drained, wiped, activated)
	}
}

// A node cannot report lifecycle phases nobody asked for, and the admin
// API maps refusals to HTTP codes.
func TestLifecycleRefusals(t *testing.T) {
	b := systemBundle(t)
	ts := startServer(t, t.TempDir(), []NodeSpec{installerNode(t, b)})
	c := fastClient(ts.url)
	ctx := context.Background()
	if _, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:01:01"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []bootstrap.Phase{bootstrap.PhaseDrained, bootstrap.PhaseDecommissioned} {
		if err := c.ReportPhase(ctx, "bm-1", p, ""); !errors.Is(err, bootstrap.ErrConflict) || !strings.Contains(err.Error(), "desired lifecycle is active") {
			t.Fatalf("unasked %s: %v", p, err)
		}
	}
	cases := []struct {
		path string
		code int
	}{
		{"/api/v1/admin/nodes/bm-1/drain", http.StatusConflict}, // not active yet
		{"/api/v1/admin/nodes/bm-1/decommission", http.StatusConflict},
		{"/api/v1/admin/nodes/bm-1/reenrol", http.StatusConflict},
		{"/api/v1/admin/nodes/ghost/drain", http.StatusNotFound},
	}
	for _, k := range cases {
		if code, body := post(t, ts.url+k.path, "", "Authorization", "Bearer admin-secret"); code != k.code {
			t.Errorf("%s: %d %s, want %d", k.path, code, body, k.code)
		}
	}
	if code, _ := post(t, ts.url+"/api/v1/admin/nodes/bm-1/drain", ""); code != http.StatusUnauthorized {
		t.Errorf("drain without the admin token: %d", code)
	}
	for _, p := range bootstrap.Phases() {
		if err := c.ReportPhase(ctx, "bm-1", p, ""); err != nil {
			t.Fatal(err)
		}
	}
	code, body := post(t, ts.url+"/api/v1/admin/nodes/bm-1/drain", "", "Authorization", "Bearer admin-secret")
	if code != http.StatusOK || !strings.Contains(body, `"lifecycle":"drain"`) {
		t.Fatalf("drain of an active node: %d %s", code, body)
	}
	if d, err := c.Desired(ctx, "bm-1"); err != nil || d.Lifecycle != bootstrap.LifecycleDrain {
		t.Fatalf("desired: %+v %v", d, err)
	}
}
