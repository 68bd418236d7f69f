package deployer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A node with an enrolment secret: knowing its MAC is not enough; the
// secret is spent on use; re-enrolment needs the current token or admin.
func TestEnrolmentSecret(t *testing.T) {
	nodes := twoNodes(t)
	nodes[0].EnrolSecret = "s3cret-a"
	ts := startServer(t, t.TempDir(), nodes)
	u := ts.url + "/api/v1/phone-home"
	mac := `"macs":["52:54:00:00:00:0a"]`
	cases := []struct {
		name, body string
		hdr        []string
		want       int
	}{
		{"no secret", `{` + mac + `}`, nil, 403},
		{"wrong secret", `{` + mac + `,"enrolSecret":"guess"}`, nil, 403},
		{"right secret", `{` + mac + `,"enrolSecret":"s3cret-a"}`, nil, 200},
		{"secret again (spent)", `{` + mac + `,"enrolSecret":"s3cret-a"}`, nil, 403},
		{"admin re-enrols", `{` + mac + `}`, []string{"Authorization", "Bearer admin-secret"}, 200},
	}
	for _, c := range cases {
		if code, body := post(t, u, c.body, c.hdr...); code != c.want {
			t.Fatalf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	// The node re-enrols with its current token.
	var e bootstrap.Enrollment
	code, body := post(t, u, `{`+mac+`}`, "Authorization", "Bearer admin-secret")
	if code != 200 || StrictJSON([]byte(body), &e) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := post(t, u, `{`+mac+`}`, "Authorization", "Bearer "+e.Token); code != 200 {
		t.Fatalf("re-enrol with the current token: %d %s", code, body)
	}
	// RequireEnrolSecret refuses nodes without one.
	_, err := NewPhoneHomeServer(ServerConfig{StateDir: t.TempDir(), Nodes: twoNodes(t), RequireEnrolSecret: true})
	if err == nil || !strings.Contains(err.Error(), "no EnrolSecret") {
		t.Fatalf("RequireEnrolSecret: %v", err)
	}
}

// A report whose request began before a re-enrolment and finished after it
// is refused: the token is checked again when the report is recorded.
func TestRevokedTokenCannotWrite(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	ctx := context.Background()
	c := fastClient(ts.url)
	if _, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil {
		t.Fatal(err)
	}
	old := c.Token()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"phase":"failed","reason":"forged"}`
	fmt.Fprintf(conn, "POST /api/v1/nodes/node-a/phase HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", old, len(body), body[:5])
	time.Sleep(200 * time.Millisecond) // the handler has authenticated and waits for the body
	if _, err := fastClient(ts.url).PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, body[5:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revoked token wrote: %d", resp.StatusCode)
	}
	if st := ts.Nodes()[0]; st.Phase == bootstrap.PhaseFailed {
		t.Fatalf("the new attempt carries the forged report: %+v", st)
	}
}

// A body trickled byte by byte is cut off at the body timeout.
func TestSlowBodyIsCutOff(t *testing.T) {
	srv, err := NewPhoneHomeServer(ServerConfig{StateDir: t.TempDir(), Nodes: twoNodes(t), BodyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/phone-home HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	start := time.Now()
	go func() {
		for i := 0; i < 50; i++ {
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil && resp.StatusCode < 400 {
		t.Fatalf("a trickled body was served: %d", resp.StatusCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the slow body held the connection %v", d)
	}
}

// Bounded state: bodies in KiB, discovered machines capped, phase history
// trimmed.
func TestServerStateIsBounded(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	big := `{"macs":["52:54:00:99:00:01"],"agentVersion":"` + strings.Repeat("x", 20<<10) + `"}`
	if code, _ := post(t, ts.url+"/api/v1/phone-home", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("20 KiB enrolment: %d", code)
	}
	for i := 0; i < maxDiscovered+40; i++ {
		post(t, ts.url+"/api/v1/phone-home", fmt.Sprintf(`{"macs":["52:54:00:77:%02x:%02x"]}`, i/256, i%256))
	}
	if n := len(ts.Discovered()); n > maxDiscovered {
		t.Fatalf("%d discovered machines kept", n)
	}
	ctx := context.Background()
	c := fastClient(ts.url)
	for i := 0; i < 20; i++ {
		if _, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range bootstrap.Phases() {
			c.ReportPhase(ctx, "node-a", p, "")
		}
	}
	if n := len(ts.Nodes()[0].Phases); n > maxPhaseHistory {
		t.Fatalf("history of %d events", n)
	}
}

// A re-enrolment that cannot be persisted changes nothing: the working
// token stays valid.
func TestFailedPersistDoesNotRevoke(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	ctx := context.Background()
	c := fastClient(ts.url)
	if _, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:00:00:0a"}}); err != nil {
		t.Fatal(err)
	}
	ts.failSave = func() error { return errors.New("disk full") }
	if code, _ := post(t, ts.url+"/api/v1/phone-home", `{"macs":["52:54:00:00:00:0a"]}`); code != 500 {
		t.Fatalf("failing persist answered %d", code)
	}
	ts.failSave = nil
	if err := c.ReportPhase(ctx, "node-a", bootstrap.PhasePlanFetched, ""); err != nil {
		t.Fatalf("the working token was revoked by a failed re-enrolment: %v", err)
	}
}

// Strict requests: 405 for a wrong method, exact-case keys, no duplicate
// keys, firmware in its enum.
func TestStrictRequests(t *testing.T) {
	ts := startServer(t, t.TempDir(), twoNodes(t))
	req, _ := http.NewRequest("DELETE", ts.url+"/api/v1/phone-home", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("DELETE: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	cases := []struct{ body, want string }{
		{`{"MACs":["52:54:00:00:00:0a"]}`, "case-sensitive"},
		{`{"macs":["52:54:00:00:00:0a"],"macs":["52:54:00:00:00:0b"]}`, "twice"},
		{`{"macs":["52:54:00:00:00:0a"],"firmware":"pxe"}`, "firmware"},
		{`{"macs":["not-a-mac"]}`, "not a MAC"},
		{`{"macs":["52:54:00:00:00:0a"]} {}`, "more than one"},
		{`{"macs":["52:54:00:00:00:0a"],"disks":[{"Name":"vda"}]}`, "case-sensitive"},
	}
	for _, c := range cases {
		code, body := post(t, ts.url+"/api/v1/phone-home", c.body)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.body, code, body, c.want)
		}
	}
	var id bootstrap.Identity
	if err := StrictJSON([]byte(`{"macs":["52:54:00:00:00:0a"],"disks":[{"name":"vda","bytes":1}]}`), &id); err != nil || id.Disks[0].Name != "vda" {
		t.Fatalf("a strict body: %v", err)
	}
}
