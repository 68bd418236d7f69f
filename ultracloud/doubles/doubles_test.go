package doubles

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// freePort returns a free TCP port on ip.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type proc struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case <-p.done:
		if p.err != nil {
			t.Error(p.err)
		}
	case <-time.After(20 * time.Second):
		t.Error("did not stop in 20 s")
	}
}

func spawn(t *testing.T, f func(ctx context.Context) error) *proc {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{cancel: cancel, done: make(chan struct{})}
	go func() { p.err = f(ctx); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

// oneMember starts a one-member chainfire on ip for the test and
// connects to it; both end with the test.
func oneMember(t *testing.T, ip string, log *slog.Logger) *clientv3.Client {
	t.Helper()
	members := []Member{{"node01", ip}}
	client, peer := freePort(t, ip), freePort(t, ip)
	dir := t.TempDir()
	spawn(t, func(ctx context.Context) error {
		return RunChainfire(ctx, ChainfireConfig{Name: "node01", Members: members, DataDir: dir, ClientHost: ip,
			ClientPort: client, PeerPort: peer, HeartbeatMs: 100, ElectionMs: 1000, LogOutput: "/dev/null"}, log)
	})
	cli, err := Connect(Endpoints(members, client), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// A real three-member chainfire on loopback addresses with flaredb, iam,
// two node-agents and two fleet-schedulers: every behaviour the lanes
// rely on, on the host, without a VM.
func TestControlPlaneDoubles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member etcd cluster")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	members := []Member{{"node01", "127.0.0.11"}, {"node02", "127.0.0.12"}, {"node03", "127.0.0.13"}}
	client, peer := freePort(t, "127.0.0.11"), freePort(t, "127.0.0.11")
	dirs := map[string]string{}
	chainfire := map[string]*proc{}
	startMember := func(name string) {
		if dirs[name] == "" {
			dirs[name] = t.TempDir()
		}
		chainfire[name] = spawn(t, func(ctx context.Context) error {
			host := members[slices.IndexFunc(members, func(m Member) bool { return m.Name == name })].Host
			return RunChainfire(ctx, ChainfireConfig{Name: name, Members: members, DataDir: dirs[name], ClientHost: host,
				ClientPort: client, PeerPort: peer, HeartbeatMs: 100, ElectionMs: 1000, LogOutput: "/dev/null"}, log)
		})
	}
	for _, m := range members {
		startMember(m.Name)
	}
	cli, err := Connect(Endpoints(members, client), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	waitFor(t, "chainfire quorum", 60*time.Second, func() error {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := cli.Put(c, "/probe", "1")
		return err
	})
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("members: %v %v", ml, err)
	}

	// flaredb and iam: state in chainfire, so any instance serves it.
	httpAddr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")) }
	fdb1, fdb2, iam1, iam2 := httpAddr(), httpAddr(), httpAddr(), httpAddr()
	for _, a := range []string{fdb1, fdb2} {
		spawn(t, func(ctx context.Context) error { return RunFlareDB(ctx, a, cli, log) })
	}
	spawn(t, func(ctx context.Context) error { return RunIAM(ctx, iam1, "node01", cli, log) })
	spawn(t, func(ctx context.Context) error { return RunIAM(ctx, iam2, "node02", cli, log) })
	do := func(method, url, body string, hdr ...string) (int, string) {
		t.Helper()
		var resp *http.Response
		waitFor(t, method+" "+url, 10*time.Second, func() error {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			var err error
			resp, err = http.DefaultClient.Do(req)
			return err
		})
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("PUT", "http://"+fdb1+"/v1/kv/a/b", "hello"); code != 200 {
		t.Fatalf("flaredb put: %d", code)
	}
	if code, body := do("GET", "http://"+fdb2+"/v1/kv/a/b", ""); code != 200 || body != "hello" {
		t.Fatalf("flaredb get through the other instance: %d %q", code, body)
	}
	if code, _ := do("GET", "http://"+fdb2+"/v1/kv/missing", ""); code != 404 {
		t.Fatalf("flaredb missing key: %d, want 404", code)
	}
	_, body := do("POST", "http://"+iam1+"/v1/tokens?subject=alice", "")
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" {
		t.Fatalf("iam token: %q %v", body, err)
	}
	if code, body := do("GET", "http://"+iam2+"/v1/whoami", "", "Authorization", "Bearer "+tok.Token); code != 200 || !strings.Contains(body, `"alice"`) {
		t.Fatalf("token issued on node01 does not validate on node02: %d %q", code, body)
	}
	if code, _ := do("GET", "http://"+iam2+"/v1/whoami", "", "Authorization", "Bearer "+strings.Repeat("0", 64)); code != 401 {
		t.Fatalf("forged token: %d, want 401", code)
	}

	// Two workers, two schedulers, three replicas.
	agents := map[string]*proc{}
	for i, node := range []string{"node04", "node05"} {
		cfg := NodeAgentConfig{Node: node, Addr: fmt.Sprintf("127.0.0.%d", 14+i), TTL: 2 * time.Second, DataDir: t.TempDir(), ProbeEvery: 200 * time.Millisecond}
		agents[node] = spawn(t, func(ctx context.Context) error { return RunNodeAgent(ctx, cfg, cli, log) })
		spawn(t, func(ctx context.Context) error {
			return RunScheduler(ctx, SchedulerConfig{Node: node, TTL: 2 * time.Second, Interval: 200 * time.Millisecond}, cli, log)
		})
	}
	spec, _ := json.Marshal(ServiceSpec{Replicas: 3})
	if _, err := cli.Put(ctx, PrefixServices+"web", string(spec)); err != nil {
		t.Fatal(err)
	}
	running := func() (map[string][]string, error) {
		resp, err := cli.Get(ctx, PrefixRunning, clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		out := map[string][]string{}
		for _, kv := range resp.Kvs {
			var in Instance
			if err := json.Unmarshal(kv.Value, &in); err != nil {
				return nil, err
			}
			// The instance really serves, and says who it is.
			r, err := http.Get("http://" + in.Addr + "/")
			if err != nil {
				return nil, err
			}
			var got Instance
			json.NewDecoder(r.Body).Decode(&got)
			r.Body.Close()
			if got != in {
				return nil, fmt.Errorf("instance at %s says %+v, registered %+v", in.Addr, got, in)
			}
			out[InstanceID(in.Service, in.Index)] = append(out[InstanceID(in.Service, in.Index)], in.Node)
		}
		return out, nil
	}
	placedOn := func(want map[string]bool) func() error {
		return func() error {
			r, err := running()
			if err != nil {
				return err
			}
			if len(r) != 3 {
				return fmt.Errorf("running %v, want web/0..2", r)
			}
			for id, nodes := range r {
				if len(nodes) != 1 || !want[nodes[0]] {
					return fmt.Errorf("%s runs on %v", id, nodes)
				}
			}
			return nil
		}
	}
	waitFor(t, "three replicas on two workers", 30*time.Second, placedOn(map[string]bool{"node04": true, "node05": true}))

	// node05's agent dies: its lease expires and its instances move.
	agents["node05"].stop(t)
	waitFor(t, "failover to node04", 30*time.Second, placedOn(map[string]bool{"node04": true}))

	// A running record lost (a write that failed under load) is written
	// again by the agent's next reconcile (a resync every 10 s).
	if _, err := cli.Delete(ctx, PrefixRunning+"node04/"+InstanceID("web", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web/1's running record written again", 30*time.Second, placedOn(map[string]bool{"node04": true}))

	// A chainfire member dies: writes continue; back, it catches up.
	chainfire["node03"].stop(t)
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/while-down/%d", i), "x"); err != nil {
			t.Fatalf("write with node03 down: %v", err)
		}
	}
	startMember("node03")
	only3, err := Connect(Endpoints(members[2:], client), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer only3.Close()
	waitFor(t, "node03 catches up", 60*time.Second, func() error {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := only3.Get(c, "/while-down/", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 5 {
			return fmt.Errorf("node03 has %d of 5 keys", len(resp.Kvs))
		}
		return nil
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
