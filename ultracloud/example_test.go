package ultracloud_test

import (
	"fmt"

	"github.com/photoncloud/testkit/ultracloud"
)

func ExampleLookupTopology() {
	topo, err := ultracloud.LookupTopology(ultracloud.TopologyBaremetalISO)
	if err != nil {
		panic(err)
	}
	for _, n := range topo.Nodes {
		fmt.Println(n.Name, n.Role, n.Firmware)
	}
	// Output:
	// baremetal-qemu-control-plane installer-target uefi
	// baremetal-qemu-worker installer-target uefi
}

func ExampleTopology_Validate() {
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologySingleNodeQuickstart)
	topo.Nodes[0].MemoryMiB = 0
	fmt.Println(topo.Validate())
	// Output:
	// topology "single-node-quickstart" is invalid (1 problem):
	//   - nodes[0].memoryMiB: 0; a node needs memory (e.g. 1024)
}
