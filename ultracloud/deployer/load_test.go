package deployer

import (
	"bufio"
	"context"
	"fmt"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// loadNodes are n machines selected by MAC, no bundle.
func loadNodes(n int) []NodeSpec {
	nodes := make([]NodeSpec, n)
	for i := range nodes {
		nodes[i] = NodeSpec{Name: fmt.Sprintf("m%05d", i), MACs: []string{loadMAC(i)}, SystemID: "s"}
	}
	return nodes
}

func loadMAC(i int) string {
	return fmt.Sprintf("52:54:01:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

// loadResult counts what a load run saw.
type loadResult struct {
	acked     atomic.Int64
	latencies []time.Duration
	mu        sync.Mutex
	// ackedBy node: how many phases each node had acknowledged.
	ackedBy map[string]int
}

// runMachines makes each machine enrol and report every forward phase,
// concurrently (limit goroutines at once). It stops early when ctx ends.
func runMachines(ctx context.Context, url string, n, limit int, res *loadResult) error {
	tr := &http.Transport{MaxIdleConnsPerHost: limit, MaxConnsPerHost: limit}
	defer tr.CloseIdleConnections()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		g.Go(func() error {
			c := bootstrap.NewClient(url, bootstrap.WithRetries(3, 100*time.Millisecond), bootstrap.WithTransport(tr))
			timed := func(f func() error) error {
				t0 := time.Now()
				err := f()
				res.mu.Lock()
				res.latencies = append(res.latencies, time.Since(t0))
				res.mu.Unlock()
				return err
			}
			var e *bootstrap.Enrollment
			if err := timed(func() (err error) { e, err = c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{loadMAC(i)}}); return }); err != nil {
				return nil // a killed server ends runs; counted by the caller
			}
			for _, p := range bootstrap.Phases() {
				if err := timed(func() error { return c.ReportPhase(ctx, e.Node, p, "") }); err != nil {
					return nil
				}
				res.acked.Add(1)
				res.mu.Lock()
				res.ackedBy[e.Node]++
				res.mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// countLost reopens the state and counts acknowledged phases it lacks.
func countLost(t testing.TB, state string, nodes []NodeSpec, ackedBy map[string]int) int {
	srv, err := NewPhoneHomeServer(ServerConfig{StateDir: state, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	lost := 0
	for _, st := range srv.Nodes() {
		if got := len(st.Phases); got < ackedBy[st.Name] {
			lost += ackedBy[st.Name] - got
		}
	}
	return lost
}

// BenchmarkPhoneHomeLoad: N simulated machines (ULTRACLOUD_LOAD_MACHINES,
// default 10000) enrol and report all phases over loopback at once. It
// prints throughput, p50/p99 latency and the acknowledged reports missing
// from the state file afterwards (must be 0).
//
//	go test -bench PhoneHomeLoad -benchtime 1x -run '^$' ./ultracloud/bootstrap
func BenchmarkPhoneHomeLoad(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("ULTRACLOUD_LOAD_MACHINES")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		state := b.TempDir()
		nodes := loadNodes(n)
		ts := startServer(b, state, nodes)
		res := &loadResult{ackedBy: map[string]int{}}
		t0 := time.Now()
		if err := runMachines(context.Background(), ts.url, n, 512, res); err != nil {
			b.Fatal(err)
		}
		wall := time.Since(t0)
		ts.stop()
		lost := countLost(b, state, nodes, res.ackedBy)
		reqs := len(res.latencies)
		b.ReportMetric(float64(reqs)/wall.Seconds(), "req/s")
		b.ReportMetric(float64(pct(res.latencies, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(res.latencies, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lost), "lost")
		b.Logf("%d machines, %d requests in %v: %.0f req/s, p50 %v, p99 %v, acked reports %d, lost %d",
			n, reqs, wall.Round(time.Millisecond), float64(reqs)/wall.Seconds(), pct(res.latencies, 0.5), pct(res.latencies, 0.99), res.acked.Load(), lost)
		if lost != 0 {
			b.Fatalf("%d acknowledged reports lost", lost)
		}
	}
}

const serverChildEnv = "ULTRACLOUD_TEST_PHONEHOME_CHILD"

// TestMain lets this test binary double as a standalone server for the
// kill -9 test.
func TestMain(m *testing.M) {
	if spec := os.Getenv(serverChildEnv); spec != "" {
		serveChild(spec)
		return
	}
	os.Exit(m.Run())
}

// serveChild runs a server on loopback for "STATEDIR:N" and prints its URL.
func serveChild(spec string) {
	state, nstr, _ := strings.Cut(spec, ":")
	n, _ := strconv.Atoi(nstr)
	srv, err := NewPhoneHomeServer(ServerConfig{StateDir: state, Nodes: loadNodes(n)})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("URL http://" + ln.Addr().String())
	srv.Serve(context.Background(), ln)
}

func startChild(t testing.TB, state string, n int) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", serverChildEnv, state, n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "URL ") {
		cmd.Process.Kill()
		t.Fatalf("server child: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(line[4:])
}

// The server is killed with SIGKILL in the middle of a load run; restarted
// on the same state file, it has every report it acknowledged.
func TestKill9LosesNoAcknowledgedReport(t *testing.T) {
	if testing.Short() {
		t.Skip("load run")
	}
	const n = 400
	state := t.TempDir()
	cmd, url := startChild(t, state, n)
	res := &loadResult{ackedBy: map[string]int{}}
	done := make(chan struct{})
	go func() { runMachines(context.Background(), url, n, 64, res); close(done) }()
	for res.acked.Load() < n { // well into the run
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	<-done
	acked := res.acked.Load()
	lost := countLost(t, state, loadNodes(n), res.ackedBy)
	t.Logf("killed after %d acknowledged reports (of %d); lost after restart: %d", acked, n*len(bootstrap.Phases()), lost)
	if acked >= int64(n*len(bootstrap.Phases())) {
		t.Fatal("the run finished before the kill; nothing was tested")
	}
	if lost != 0 {
		t.Fatalf("%d acknowledged reports lost", lost)
	}
	// The restarted server keeps serving: a node continues where it was.
	cmd2, url2 := startChild(t, state, n)
	defer func() { cmd2.Process.Kill(); cmd2.Wait() }()
	c := bootstrap.NewClient(url2, bootstrap.WithRetries(1, 10*time.Millisecond))
	if _, err := c.PhoneHome(context.Background(), bootstrap.Identity{MACs: []string{loadMAC(0)}}); err != nil {
		t.Fatal(err)
	}
}
