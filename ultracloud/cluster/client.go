package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/photoncloud/testkit/ultracloud"
)

// Client talks to the supervisor of a state dir; what needs no supervisor
// (the topology, the console logs, a dead supervisor's last word) it reads
// from the dir.
type Client struct {
	s    state
	topo ultracloud.Topology
	http *http.Client
}

// Open is the client of the cluster in dir, or ErrNoCluster naming the
// command that makes one.
func Open(dir string) (*Client, error) {
	s, err := newState(dir)
	if err != nil {
		return nil, err
	}
	topo, err := s.readTopology()
	if err != nil {
		return nil, err
	}
	sock := s.socket()
	return &Client{s: s, topo: topo, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}, nil
}

// Dir is the state dir.
func (cl *Client) Dir() string { return cl.s.dir }

// Topology is the cluster's topology.
func (cl *Client) Topology() ultracloud.Topology { return cl.topo.Clone() }

// Alive reports whether a supervisor owns the cluster.
func (cl *Client) Alive() bool { return alive(cl.s) }

// Status asks the supervisor. Without one it returns the supervisor's last
// recorded state: stopped after a stop, or SupervisorGone (with what to do)
// when it died; every node is then stopped (its machines died with it).
func (cl *Client) Status(ctx context.Context) (Status, error) {
	if cl.Alive() {
		var st Status
		err := cl.call(ctx, http.MethodGet, "/v1/status", &st)
		if err == nil {
			return st, nil
		}
		if cl.Alive() {
			return Status{}, fmt.Errorf("supervisor of %s does not answer: %w", cl.s.dir, err)
		}
	}
	st := Status{Dir: cl.s.dir, Topology: cl.topo.Name, Supervisor: cl.s.readSupervisor()}
	switch st.Supervisor.State {
	case SupervisorStopped, SupervisorFailed:
	default:
		st.Supervisor.Detail = fmt.Sprintf("the supervisor (pid %d) died while %s; its machines died with it. `ultracloud cluster start` boots the same disks again, `ultracloud cluster clean` removes them", st.Supervisor.PID, st.Supervisor.State)
		st.Supervisor.State = SupervisorGone
	}
	for _, n := range cl.topo.Nodes {
		st.Nodes = append(st.Nodes, NodeStatus{Name: n.Name, Role: n.Role, State: NodeStopped})
	}
	return st, nil
}

func (cl *Client) call(ctx context.Context, method, path string, out any) error {
	return cl.do(ctx, method, path, nil, out)
}

func (cl *Client) post(ctx context.Context, path string, body []byte) error {
	return cl.do(ctx, http.MethodPost, path, body, nil)
}

func (cl *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("supervisor: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Stop asks the supervisor to power the machines down (each within
// ShutdownTimeout, then killed), keeping the disks, and waits until it is
// gone (bounded by ctx). Without a supervisor there is nothing to stop.
func (cl *Client) Stop(ctx context.Context) error {
	if !cl.Alive() {
		return nil
	}
	if err := cl.call(ctx, http.MethodPost, "/v1/stop", nil); err != nil && cl.Alive() {
		return err
	}
	for cl.Alive() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: the supervisor still runs: %w", cl.s.dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Node checks that node is one of the cluster's, else ErrUnknownNode
// listing them.
func (cl *Client) Node(node string) error {
	if _, ok := cl.topo.Node(node); ok {
		return nil
	}
	var names []string
	for _, n := range cl.topo.Nodes {
		names = append(names, n.Name)
	}
	return fmt.Errorf("%w %q; the nodes are %s", ErrUnknownNode, node, strings.Join(names, ", "))
}

// ConsoleLog is the path of node's console log (kept after stop).
func (cl *Client) ConsoleLog(node string) (string, error) {
	if err := cl.Node(node); err != nil {
		return "", err
	}
	return cl.s.consoleLog(node), nil
}

// Keys are the cluster's SSH keys.
func (cl *Client) Keys() (*Keys, error) { return LoadKeys(cl.s.keys()) }

// SSH logs in to node as root through the supervisor's forward, retrying
// while its sshd comes up (until ctx ends).
func (cl *Client) SSH(ctx context.Context, node string) (*ssh.Client, error) {
	if err := cl.Node(node); err != nil {
		return nil, err
	}
	if !cl.Alive() {
		st, _ := cl.Status(ctx)
		return nil, fmt.Errorf("ssh %s: the cluster is not running (supervisor %s); run `ultracloud cluster start`", node, st.Supervisor.State)
	}
	keys, err := cl.Keys()
	if err != nil {
		return nil, err
	}
	for {
		addr, err := cl.sshAddress(ctx, node)
		if err == nil {
			return DialSSH(ctx, addr, node, keys)
		}
		if !cl.Alive() {
			return nil, fmt.Errorf("ssh %s: %w", node, ErrSupervisorGone)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s: no SSH forward (%v): %w", node, err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Spawn starts argv (a command that ends up in Supervise for dir, e.g.
// `ultracloud cluster supervise --state DIR`) detached from the caller, in
// its own session with its output in supervisor.log, and waits until the
// supervisor runs every machine (or failed, or died: then the error has the
// log's tail).
func Spawn(ctx context.Context, dir string, argv []string) (*Client, error) {
	cl, err := Open(dir)
	if err != nil {
		return nil, err
	}
	if cl.Alive() {
		return nil, fmt.Errorf("%w in %s", ErrRunning, cl.s.dir)
	}
	os.Remove(cl.s.supervisor())
	logf, err := os.OpenFile(cl.s.log(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies while we wait
	for {
		sup := cl.s.readSupervisor()
		if _, err := os.Stat(cl.s.supervisor()); err == nil && sup.PID == cmd.Process.Pid {
			switch sup.State {
			case SupervisorRunning:
				return cl, nil
			case SupervisorFailed, SupervisorStopped:
				return nil, fmt.Errorf("the supervisor %s: %s\n%s", sup.State, sup.Detail, tail(cl.s.log(), 20))
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the supervisor exited (%v) before the cluster ran:\n%s", err, tail(cl.s.log(), 20))
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			return nil, fmt.Errorf("waiting for the supervisor: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Clean stops the cluster of dir and removes its state (disks, keys,
// logs). It always works: a supervisor that does not stop within ctx is
// killed (its machines die with it); a dead one is nothing to stop; a dir
// without a cluster is nothing to remove.
func Clean(ctx context.Context, dir string) error {
	s, err := newState(dir)
	if err != nil {
		return err
	}
	if cl, err := Open(dir); err == nil && cl.Alive() {
		sctx, cancel := context.WithTimeout(ctx, ShutdownTimeout+10*time.Second)
		err := cl.Stop(sctx)
		cancel()
		if err != nil {
			if pid := s.readSupervisor().PID; pid > 0 && alive(s) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			for end := time.Now().Add(5 * time.Second); alive(s) && time.Now().Before(end); {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	if alive(s) {
		return fmt.Errorf("clean %s: the supervisor (pid %d) survived SIGKILL", s.dir, s.readSupervisor().PID)
	}
	return errors.Join(os.RemoveAll(s.run()), os.RemoveAll(s.dir))
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
