package cluster_test

import (
	"context"
	"fmt"
	"log"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Start the 3-node HA topology on the fixture guest, cut node01 off, and
// see it from inside node02. (Compiled, not run: it boots VMs; see
// TestClusterFaults.)
func ExampleStart() {
	ctx := context.Background()
	host, err := vm.Preflight(ctx)
	if err != nil {
		log.Fatal(err)
	}
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyHAControlPlane)
	c, err := cluster.Start(ctx, topo, host)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	node02, _ := c.Node("node02")
	if err := node02.Shell().Connected(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Partition([]string{"node01"}, []string{"node02", "node03"}); err != nil {
		log.Fatal(err)
	}
	a, _ := c.Address("node01", ultracloud.NetCluster)
	r, _ := node02.Shell().Execute(ctx, "ping -c 1 -W 2 "+a.String())
	fmt.Println("node02 reaches node01:", r.ExitCode == 0)
	for _, e := range c.Events() {
		fmt.Println(e.Node, e.Name, e.Detail)
	}
}
