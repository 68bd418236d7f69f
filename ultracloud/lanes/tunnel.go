package lanes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/ssh"

	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
)

// tunnels reach services inside the nodes through their SSH forwards
// (direct-tcpip channels), so a lane's clients on the host talk to the
// real services over the guests' own loopback and cluster network, with
// no route from the host into the cluster network.
type tunnels struct {
	op cluster.Operator
	mu sync.Mutex
	c  map[string]*ssh.Client
}

func newTunnels(op cluster.Operator) *tunnels {
	return &tunnels{op: op, c: map[string]*ssh.Client{}}
}

// dial connects to addr as seen from node. A refused or timed-out
// channel is tried again on the same SSH connection while it is alive
// (other channels on it, such as a browser's parallel requests, go on);
// a dead connection (a restarted node) is dropped and the node logged in
// to again.
func (t *tunnels) dial(ctx context.Context, node, addr string) (net.Conn, error) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		cl, err := t.client(ctx, node)
		if err != nil {
			return nil, err
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := cl.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			return conn, nil
		}
		if !alive(ctx, cl) {
			t.drop(node, cl)
		}
		if attempt == attempts || ctx.Err() != nil {
			return nil, fmt.Errorf("%s via %s (%d attempts): %w", addr, node, attempt, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
}

// alive tells whether the SSH connection still answers a keepalive
// request within 10 s.
func alive(ctx context.Context, cl *ssh.Client) bool {
	done := make(chan error, 1)
	go func() {
		_, _, err := cl.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err == nil
	case <-ctx.Done():
		return false
	case <-time.After(10 * time.Second):
		return false
	}
}

func (t *tunnels) client(ctx context.Context, node string) (*ssh.Client, error) {
	t.mu.Lock()
	cl := t.c[node]
	t.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cl, err := t.op.SSH(sctx, node)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.c[node]; old != nil {
		cl.Close()
		return old, nil
	}
	t.c[node] = cl
	return cl, nil
}

func (t *tunnels) drop(node string, cl *ssh.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c[node] == cl {
		delete(t.c, node)
		cl.Close()
	}
}

// run runs cmd on node over SSH and returns its standard output.
func (t *tunnels) run(ctx context.Context, node, cmd string) (string, error) {
	cl, err := t.client(ctx, node)
	if err != nil {
		return "", err
	}
	var out, errb strings.Builder
	code, err := cluster.RunSSH(ctx, cl, cmd, nil, &out, &errb)
	if err != nil {
		t.drop(node, cl)
		return "", fmt.Errorf("%s: %s: %w", node, cmd, err)
	}
	if code != 0 {
		return out.String(), fmt.Errorf("%s: %s: exit status %d: %s", node, cmd, code, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// chainfire returns an etcd client of the chainfire members among nodes,
// each reached on its own 127.0.0.1:2379 through its SSH forward.
func (t *tunnels) chainfire(nodes ...string) (*clientv3.Client, error) {
	eps := make([]string, len(nodes))
	for i, n := range nodes {
		eps[i] = fmt.Sprintf("http://%s:%d", n, doubles.ClientPort)
	}
	return doubles.Connect(eps, func(ctx context.Context, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return t.dial(ctx, host, fmt.Sprintf("127.0.0.1:%d", doubles.ClientPort))
	})
}

// http returns an HTTP client whose connections are made from node.
func (t *tunnels) http(node string) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return t.dial(ctx, node, addr) },
			DisableKeepAlives: true,
		},
	}
}

// get fetches url from node: status and body.
func (t *tunnels) get(ctx context.Context, node, method, url string, hdr ...string) (int, string, error) {
	return t.send(ctx, node, method, url, "", hdr...)
}

// send sends body to url from node: status and body.
func (t *tunnels) send(ctx context.Context, node, method, url, body string, hdr ...string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := t.http(node).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(data), err
}

func (t *tunnels) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n, cl := range t.c {
		cl.Close()
		delete(t.c, n)
	}
}

// dropAll forgets node's SSH connection (the node restarted).
func (t *tunnels) dropAll(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cl := t.c[node]; cl != nil {
		cl.Close()
		delete(t.c, node)
	}
}
