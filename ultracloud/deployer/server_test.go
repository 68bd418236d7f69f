package deployer

import (
	"context"
	"errors"
	"fmt"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testServer runs a PhoneHomeServer on loopback with a real bbolt file.
type testServer struct {
	*PhoneHomeServer
	url    string
	state  string
	cancel func()
	done   chan struct{}
}

func startServer(t testing.TB, stateDir string, nodes []NodeSpec) *testServer {
	t.Helper()
	return startServerRun(t, stateDir, nodes, "")
}

func startServerRun(t testing.TB, stateDir string, nodes []NodeSpec, run string) *testServer {
	t.Helper()
	srv, err := NewPhoneHomeServer(ServerConfig{StateDir: stateDir, Nodes: nodes, AdminToken: "admin-secret", RunID: run})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.cfg.PublicURL = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{PhoneHomeServer: srv, url: srv.cfg.PublicURL, state: stateDir, cancel: cancel, done: make(chan struct{})}
	go func() { srv.Serve(ctx, ln); close(ts.done) }()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	select {
	case <-ts.done:
		return
	default:
	}
	ts.cancel()
	<-ts.done
	ts.Close()
}

func writeBundle(t testing.TB, systemID string, files map[string]string) *bootstrap.Bundle {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	b, err := bootstrap.PackBundle(context.Background(), dir, systemID, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func twoNodes(t testing.TB) []NodeSpec {
	a := writeBundle(t, "sys-a", map[string]string{"root/etc/ultracloud/system-id": "sys-a\n", "esp/EFI/BOOT/BOOTX64.EFI": "efi-a"})
	b := writeBundle(t, "sys-b", map[string]string{"root/etc/ultracloud/system-id": "sys-b\n", "esp/EFI/BOOT/BOOTX64.EFI": "efi-b"})
	plan, _ := os.ReadFile("../bootstrap/testdata/disko/esp-root.json")
	return []NodeSpec{
		{Name: "node-a", Role: "control-plane", MACs: []string{"52:54:00:00:00:0a"}, Serial: "SER-A", Plan: plan, TargetDisk: "/dev/vda", Bundle: a.Path, SystemID: "sys-a"},
		{Name: "node-b", Role: "worker", MachineID: "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0", MACs: []string{"52:54:00:00:00:0b"}, Plan: plan, Bundle: b.Path, SystemID: "sys-b"},
	}
}

func fastClient(url string, opts ...bootstrap.ClientOption) *bootstrap.Client {
	return bootstrap.NewClient(url, append([]bootstrap.ClientOption{bootstrap.WithRetries(2, 50*time.Millisecond)}, opts...)...)
}

func TestEnrolBySelector(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	ctx := context.Background()
	cases := []struct {
		name string
		id   bootstrap.Identity
		want string
	}{
		{"mac", bootstrap.Identity{MACs: []string{"52:54:00:00:00:0A"}}, "node-a"},
		{"serial beats mac", bootstrap.Identity{Serial: "SER-A", MACs: []string{"52:54:00:00:00:0b"}}, "node-a"},
		{"machine-id beats serial", bootstrap.Identity{MachineID: "B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0", Serial: "SER-A"}, "node-b"},
	}
	for _, c := range cases {
		e, err := fastClient(ts.url).PhoneHome(ctx, c.id)
		if err != nil || e.Node != c.want {
			t.Fatalf("%s: %+v %v", c.name, e, err)
		}
		if len(e.Token) < 32 || e.Bundle.SHA256 == "" || !strings.HasPrefix(e.Bundle.URL, ts.url) || len(e.Plan) == 0 {
			t.Fatalf("%s: enrolment %+v", c.name, e)
		}
	}
	// Unknown machines get 404 with a reason and are recorded.
	_, err := fastClient(ts.url).PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:99:99:99"}, Serial: "nope"})
	if !errors.Is(err, bootstrap.ErrUnknownMachine) || !strings.Contains(err.Error(), "52:54:00:99:99:99") {
		t.Fatalf("unknown: %v", err)
	}
	if d := ts.Discovered(); len(d) != 1 || d[0].Identity.Serial != "nope" {
		t.Fatalf("discovered %+v", d)
	}
	// Tokens are stored hashed.
	data, _ := os.ReadFile(filepath.Join(ts.state, "phone-home.db"))
	e, _ := fastClient(ts.url).PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}})
	ts.stop()
	data, _ = os.ReadFile(filepath.Join(ts.state, "phone-home.db"))
	if strings.Contains(string(data), e.Token) {
		t.Fatal("plain token in the state file")
	}
}

func TestTokenIsolation(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	ctx := context.Background()
	ca := fastClient(ts.url)
	ea, err := ca.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := fastClient(ts.url).PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0b"}})
	if err != nil {
		t.Fatal(err)
	}
	// A's token on B's bundle: 403.
	err = ca.FetchBundle(ctx, eb.Bundle, filepath.Join(t.TempDir(), "b"))
	if !errors.Is(err, bootstrap.ErrForbidden) {
		t.Fatalf("A fetching B's bundle: %v", err)
	}
	// A's token on B's phase and desired system: 403.
	if err := ca.ReportPhase(ctx, "node-b", bootstrap.PhasePlanFetched, ""); !errors.Is(err, bootstrap.ErrForbidden) {
		t.Fatalf("A reporting for B: %v", err)
	}
	if _, err := ca.Desired(ctx, "node-b"); !errors.Is(err, bootstrap.ErrForbidden) {
		t.Fatalf("A reading B's desired: %v", err)
	}
	// No token: 401 (also ErrForbidden to callers).
	if err := fastClient(ts.url).ReportPhase(ctx, "node-a", bootstrap.PhasePlanFetched, ""); !errors.Is(err, bootstrap.ErrForbidden) {
		t.Fatalf("anonymous: %v", err)
	}
	// Its own bundle works.
	if err := ca.FetchBundle(ctx, ea.Bundle, filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}
	// Admin API needs the admin token.
	resp, _ := http.Get(ts.url + "/api/v1/admin/nodes")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without token: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestBundleRangeAndETag(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	c := fastClient(ts.url)
	e, err := c.PhoneHome(context.Background(), bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", e.Bundle.URL, nil)
		req.Header.Set("Authorization", "Bearer "+e.Token)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	full, whole := get(nil)
	if full.StatusCode != 200 || full.Header.Get("ETag") != `"`+e.Bundle.SHA256+`"` || int64(len(whole)) != e.Bundle.Size {
		t.Fatalf("full: %d %q %d", full.StatusCode, full.Header.Get("ETag"), len(whole))
	}
	part, body := get(map[string]string{"Range": "bytes=10-19"})
	if part.StatusCode != http.StatusPartialContent || string(body) != string(whole[10:20]) {
		t.Fatalf("range: %d %q", part.StatusCode, body)
	}
	nm, _ := get(map[string]string{"If-None-Match": `"` + e.Bundle.SHA256 + `"`})
	if nm.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", nm.StatusCode)
	}
	// A resumed download: half the file already there.
	dst := filepath.Join(t.TempDir(), "bundle")
	os.WriteFile(dst+".part", whole[:len(whole)/2], 0o644)
	if err := c.FetchBundle(context.Background(), e.Bundle, dst); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if string(got) != string(whole) {
		t.Fatal("resumed download differs")
	}
	// A corrupt partial (wrong bytes) fails the sha256 check and leaves nothing.
	bad := append([]byte{}, whole[:len(whole)/2]...)
	bad[0] ^= 0xff
	dst2 := filepath.Join(t.TempDir(), "bundle")
	os.WriteFile(dst2+".part", bad, 0o644)
	if err := c.FetchBundle(context.Background(), e.Bundle, dst2); !errors.Is(err, bootstrap.ErrBundle) {
		t.Fatalf("corrupt resume: %v", err)
	}
	if _, err := os.Stat(dst2); err == nil {
		t.Fatal("corrupt bundle left at dst")
	}
}

func TestPhaseOrdering(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	ctx := context.Background()
	c := fastClient(ts.url)
	if _, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		p    bootstrap.Phase
		want error
	}{
		{bootstrap.PhasePlanFetched, nil},
		{bootstrap.PhasePlanFetched, nil}, // a retried report is accepted once
		{bootstrap.PhaseDiskApplied, nil}, // forward skips are fine
		{bootstrap.PhaseBundleFetched, bootstrap.ErrConflict},
		{"installing", nil}, // unknown phase: 400 (checked below)
		{bootstrap.PhaseFailed, nil},
		{bootstrap.PhaseActive, bootstrap.ErrConflict},
	}
	for i, s := range steps {
		err := c.ReportPhase(ctx, "node-a", s.p, "reason "+fmt.Sprint(i))
		if s.p == "installing" {
			if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "unknown phase") {
				t.Fatalf("unknown phase: %v", err)
			}
			continue
		}
		if (s.want == nil) != (err == nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Fatalf("step %d %s: got %v want %v", i, s.p, err, s.want)
		}
	}
	// Strict decoding names the unknown field.
	req, _ := http.NewRequest("POST", ts.url+"/api/v1/phone-home", strings.NewReader(`{"macs":[],"colour":"blue"}`))
	resp, _ := http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), `unknown field \"colour\"`) {
		t.Fatalf("strict decoding: %d %s", resp.StatusCode, body)
	}
	// Oversized bodies are refused.
	req, _ = http.NewRequest("POST", ts.url+"/api/v1/phone-home", strings.NewReader(`{"serial":"`+strings.Repeat("x", 2<<20)+`"}`))
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", resp.StatusCode)
	}
	// WaitPhase returns at once with the failure.
	ctx2, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := ts.WaitPhase(ctx2, "node-a", bootstrap.PhaseActive); !errors.Is(err, bootstrap.ErrNodeFailed) || !strings.Contains(err.Error(), "reason 5") {
		t.Fatalf("WaitPhase on a failed node: %v", err)
	}
}

// A server restarted on the same state file keeps enrolments, tokens and
// phases.
func TestRestartKeepsState(t *testing.T) {
	state := t.TempDir()
	nodes := twoNodes(t)
	ts := startServer(t, state, nodes)
	ctx := context.Background()
	c := fastClient(ts.url)
	if _, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []bootstrap.Phase{bootstrap.PhasePlanFetched, bootstrap.PhaseBundleFetched} {
		if err := c.ReportPhase(ctx, "node-a", p, ""); err != nil {
			t.Fatal(err)
		}
	}
	ts.stop()
	ts2 := startServer(t, state, nodes)
	c2 := bootstrap.NewClient(ts2.url, bootstrap.WithToken(c.Token()), bootstrap.WithRetries(1, 10*time.Millisecond))
	if err := c2.ReportPhase(ctx, "node-a", bootstrap.PhaseDiskApplied, ""); err != nil {
		t.Fatalf("old token after restart: %v", err)
	}
	st := ts2.Nodes()
	if st[0].Name != "node-a" || st[0].Phase != bootstrap.PhaseDiskApplied || len(st[0].Phases) != 3 || !st[0].Enrolled {
		t.Fatalf("after restart: %+v", st[0])
	}
	if err := c2.ReportPhase(ctx, "node-a", bootstrap.PhasePlanFetched, ""); !errors.Is(err, bootstrap.ErrConflict) {
		t.Fatalf("ordering survives restart: %v", err)
	}
}

// A server reopened on an earlier run's state never satisfies a wait with
// that run's events: the node must enrol and report again in this run.
func TestWaitPhaseOnlyThisRun(t *testing.T) {
	state := t.TempDir()
	nodes := twoNodes(t)
	ctx := context.Background()
	ts := startServerRun(t, state, nodes, "run-1")
	c := fastClient(ts.url)
	e, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}})
	if err != nil || e.Run != "run-1" {
		t.Fatalf("enrolment %+v %v", e, err)
	}
	for _, p := range bootstrap.Phases() {
		if err := c.ReportPhase(ctx, "node-a", p, ""); err != nil {
			t.Fatal(err)
		}
	}
	if ev, err := ts.WaitPhase(ctx, "node-a", bootstrap.PhaseActive); err != nil || ev.Run != "run-1" {
		t.Fatalf("same run: %+v %v", ev, err)
	}
	ts.stop()

	ts2 := startServerRun(t, state, nodes, "run-2")
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = ts2.WaitPhase(wctx, "node-a", bootstrap.PhasePlanFetched)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nothing yet") {
		t.Fatalf("run-2 accepted run-1's events: %v", err)
	}
	// The old token still reports, but into the old run: not this run's.
	old := bootstrap.NewClient(ts2.url, bootstrap.WithToken(c.Token()), bootstrap.WithRetries(1, 10*time.Millisecond))
	_ = old.ReportPhase(ctx, "node-a", bootstrap.PhaseActive, "")
	wctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = ts2.WaitPhase(wctx, "node-a", bootstrap.PhaseActive)
	cancel()
	if err == nil {
		t.Fatal("a report under run-1's enrolment satisfied run-2's wait")
	}
	start := time.Now().UTC()
	c2 := fastClient(ts2.url)
	if e, err := c2.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil || e.Run != "run-2" {
		t.Fatalf("re-enrol: %+v %v", e, err)
	}
	if err := c2.ReportPhase(ctx, "node-a", bootstrap.PhasePlanFetched, ""); err != nil {
		t.Fatal(err)
	}
	ev, err := ts2.WaitPhase(ctx, "node-a", bootstrap.PhasePlanFetched)
	if err != nil || ev.Run != "run-2" || ev.At.Before(start) {
		t.Fatalf("run-2 event %+v (start %v) %v", ev, start, err)
	}
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, nodes := range map[string][]NodeSpec{
		"dup name":    {{Name: "a", MACs: []string{"52:54:00:00:00:01"}}, {Name: "a", MACs: []string{"52:54:00:00:00:02"}}},
		"shared mac":  {{Name: "a", MACs: []string{"52:54:00:00:00:01"}}, {Name: "b", MACs: []string{"52:54:00:00:00:01"}}},
		"no selector": {{Name: "a"}},
		"no bundle":   {{Name: "a", Serial: "x", Bundle: "/nonexistent"}},
	} {
		if _, err := NewPhoneHomeServer(ServerConfig{StateDir: dir, Nodes: nodes}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// Every route the server serves is documented in the OpenAPI file, with
// its method.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	spec, err := os.ReadFile("../../docs/phone-home.openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := &PhoneHomeServer{}
	text := string(spec)
	for _, r := range s.routes() {
		i := strings.Index(text, "\n  "+r.pattern+":\n")
		if i < 0 {
			t.Errorf("%s is not in the OpenAPI paths", r.pattern)
			continue
		}
		block := text[i+1:]
		if j := strings.Index(block[3:], "\n  /"); j >= 0 {
			block = block[:j+3]
		}
		if !strings.Contains(block, "\n    "+strings.ToLower(r.method)+":") {
			t.Errorf("%s %s is not documented", r.method, r.pattern)
		}
	}
}
