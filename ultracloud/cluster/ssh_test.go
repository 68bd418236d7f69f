package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// SSH into a fixture node with the cluster's keys: commands with their
// exit status, stdin and stderr, a PTY, the host key held, and /var/lib on
// the node's disk surviving a restart.
func TestClusterSSHAndPersist(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := cluster.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("", "ucrun-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologySingleNodeQuickstart)
	c := cluster.StartT(t, topo, host, cluster.WithSSH(keys), cluster.WithPersist(), cluster.WithRunDir(run))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	client, err := c.SSH(ctx, "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, tc := range []struct {
		cmd, stdin, stdout, stderr string
		code                       int
	}{
		{cmd: "hostname", stdout: "quickstart\n"},
		{cmd: "exit 7", code: 7},
		{cmd: "cat; echo oops >&2", stdin: "from the host", stdout: "from the host", stderr: "oops\n"},
		{cmd: "id -u; pwd", stdout: "0\n/root\n"},
		{cmd: "kill -TERM $$", code: 128 + 15},
	} {
		var out, errb bytes.Buffer
		code, err := cluster.RunSSH(ctx, client, tc.cmd, strings.NewReader(tc.stdin), &out, &errb)
		if err != nil || code != tc.code || out.String() != tc.stdout || errb.String() != tc.stderr {
			t.Errorf("%q: exit %d (want %d) stdout %q (want %q) stderr %q (want %q) err %v", tc.cmd, code, tc.code, out.String(), tc.stdout, errb.String(), tc.stderr, err)
		}
	}

	// A PTY with the size asked for.
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 40, 100, nil); err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput("tty; stty size; echo $TERM")
	if err != nil || !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "40 100") || !strings.Contains(string(out), "xterm") {
		t.Fatalf("pty: %q %v", out, err)
	}

	// The host key is held: the key of another node is refused.
	addr, err := c.SSHAddress(ctx, "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.DialSSH(ctx, addr, "some-other-node", keys); !errors.Is(err, cluster.ErrHostKey) {
		t.Fatalf("other node's host key: %v", err)
	}

	// /var/lib is the node's disk: a file there survives Restart.
	if code, err := cluster.RunSSH(ctx, client, "grep -q ' /var/lib ' /proc/mounts && echo kept > /var/lib/probe && sync", nil, os.Stderr, os.Stderr); err != nil || code != 0 {
		t.Fatalf("write: %d %v", code, err)
	}
	client.Close()
	if _, err := c.Restart(ctx, "quickstart"); err != nil {
		t.Fatal(err)
	}
	if client, err = c.SSH(ctx, "quickstart"); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var got bytes.Buffer
	if code, err := cluster.RunSSH(ctx, client, "cat /var/lib/probe", nil, &got, os.Stderr); err != nil || code != 0 || got.String() != "kept\n" {
		t.Fatalf("after restart: %q exit %d %v", got.String(), code, err)
	}
}
