package cluster_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// prismnet's double on two fixture workers: a port attached on node02 is
// reachable from node03 across the VXLAN overlay (over the cluster VLAN),
// and not while node02's cluster link is down.
func TestPrismnetAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a cluster")
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyFleetScheduler)
	topo.Nodes[1].Components = []string{"prismnet"}
	topo.Nodes[2].Components = []string{"prismnet"}
	c := cluster.StartT(t, topo, host)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := c.BootAll(ctx); err != nil {
		t.Fatal(err)
	}
	m2, _ := c.Node("node02")
	m3, _ := c.Node("node03")
	for _, m := range []*vm.Machine{m2, m3} {
		if err := m.Shell().WaitForUnit(ctx, "prismnet.service"); err != nil {
			dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, derr := m.Shell().Execute(dctx, "systemctl status prismnet 2>&1; journalctl -u prismnet 2>&1 | tail -n 30")
			dcancel()
			t.Fatalf("%s: %v\nprismnet's status and journal (%v):\n%s", m.Name(), err, derr, out.Stdout)
		}
	}
	// The unit's API port is the one its status lists.
	out, err := m2.Shell().Succeed(ctx, `port=$(systemctl status prismnet | sed -n 's/.*Listen: 127.0.0.1:\([0-9]*\).*/\1/p'); wget -q -O - --post-data= http://127.0.0.1:$port/v1/ports/p1`)
	var p doubles.Port
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.IP == "" {
		t.Fatalf("attach p1 on node02: %q %v", out, err)
	}
	ping := func(from, to string) (bool, error) {
		m, err := c.Node(from)
		if err != nil {
			return false, err
		}
		r, err := m.Shell().Execute(ctx, "ping -c 1 -W 2 "+p.IP)
		return err == nil && r.ExitCode == 0, err
	}
	testenv.Reachable(t, "overlay", map[[2]string]bool{{"node03", "p1"}: true}, ping)
	if err := c.LinkDown(ctx, "node02", ultracloud.NetCluster); err != nil {
		t.Fatal(err)
	}
	testenv.Reachable(t, "node02's cluster link down", map[[2]string]bool{{"node03", "p1"}: false}, ping)
	if err := c.LinkUp(ctx, "node02", ultracloud.NetCluster); err != nil {
		t.Fatal(err)
	}
	testenv.Reachable(t, "link back up", map[[2]string]bool{{"node03", "p1"}: true}, ping)
	t.Logf("port p1 %s on node02 (netns %s) reached from node03 over the overlay", p.IP, p.NetNS)
}
