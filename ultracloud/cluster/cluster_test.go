package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// A 3-node cluster of the ha-control-plane topology, and every fault
// observed from inside the guests.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a cluster")
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyHAControlPlane)
	start := time.Now()
	c := cluster.StartT(t, topo, host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nodes := []string{"node01", "node02", "node03"}
	addr := map[string]string{}
	for _, n := range nodes {
		m, err := c.Node(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Shell().Connected(ctx); err != nil {
			t.Fatal(err)
		}
		a, err := c.Address(n, ultracloud.NetCluster)
		if err != nil {
			t.Fatal(err)
		}
		addr[n] = a.String()
	}
	t.Logf("3 nodes up in %v; addresses %v", time.Since(start).Round(time.Millisecond), addr)
	ping := func(from, to string) (bool, error) {
		m, err := c.Node(from)
		if err != nil {
			return false, err
		}
		r, err := m.Shell().Execute(ctx, "ping -c 1 -W 2 "+addr[to])
		return err == nil && r.ExitCode == 0, err
	}
	expect := func(stage string, want map[[2]string]bool) {
		t.Helper()
		testenv.Reachable(t, stage, want, ping)
	}
	all := map[[2]string]bool{{"node01", "node02"}: true, {"node02", "node03"}: true, {"node03", "node01"}: true}
	expect("start", all)

	if err := c.Partition([]string{"node01"}, []string{"node02", "node03"}); err != nil {
		t.Fatal(err)
	}
	expect("partition", map[[2]string]bool{{"node01", "node02"}: false, {"node02", "node03"}: true, {"node03", "node01"}: false})
	c.Heal()
	expect("heal", all)

	if err := c.Pause(ctx, "node02"); err != nil {
		t.Fatal(err)
	}
	expect("pause", map[[2]string]bool{{"node01", "node02"}: false, {"node03", "node01"}: true})
	if err := c.Resume(ctx, "node02"); err != nil {
		t.Fatal(err)
	}
	expect("resume", all)

	if err := c.LinkDown(ctx, "node03", ultracloud.NetCluster); err != nil {
		t.Fatal(err)
	}
	expect("link down", map[[2]string]bool{{"node01", "node03"}: false, {"node01", "node02"}: true})
	if err := c.LinkUp(ctx, "node03", ultracloud.NetCluster); err != nil {
		t.Fatal(err)
	}
	expect("link up", all)

	// Kill, then restart from the same disk: what was written is there.
	m3, _ := c.Node("node03")
	if _, err := m3.Shell().Succeed(ctx, "printf persist-me | dd of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null"); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, "node03"); err != nil {
		t.Fatal(err)
	}
	if !m3.Exited() {
		t.Fatal("node03 still runs after Kill")
	}
	m3, err = c.Restart(ctx, "node03")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m3.Shell().Succeed(ctx, "dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 10"); err != nil || out != "persist-me" {
		t.Fatalf("after restart the disk holds %q (%v)", out, err)
	}
	expect("restart", all)

	// Disk write errors on node02: the guest sees EIO on writes only.
	m2, err := c.DiskErrors(ctx, "node02", "root", "write", 5)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m2.Shell().Execute(ctx, "dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>&1")
	if err != nil || r.ExitCode == 0 || !strings.Contains(string(r.Stdout), "Input/output error") {
		t.Fatalf("write under DiskErrors: exit %d %q %v", r.ExitCode, r.Stdout, err)
	}
	if _, err := m2.Shell().Succeed(ctx, "dd if=/dev/vda of=/dev/null bs=4096 count=1 iflag=direct"); err != nil {
		t.Fatalf("reads must still work: %v", err)
	}
	if m2, err = c.ClearDiskErrors(ctx, "node02"); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Shell().Succeed(ctx, "dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct"); err != nil {
		t.Fatalf("write after ClearDiskErrors: %v", err)
	}

	var names []string
	for _, e := range c.Events() {
		names = append(names, e.Node+":"+e.Name)
	}
	for _, want := range []string{":partition", ":heal", "node02:pause", "node02:resume", "node03:link-down", "node03:link-up", "node03:kill", "node03:restart", "node02:disk-errors", "node02:disk-errors-cleared"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("no %s event in %v", want, names)
		}
	}
	if _, err := c.Node("node99"); !errors.Is(err, cluster.ErrUnknownNode) || !strings.Contains(err.Error(), "node01, node02, node03") {
		t.Fatalf("unknown node: %v", err)
	}
}
