package ultracloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Names of the canonical topologies.
const (
	TopologySingleNodeQuickstart = "single-node-quickstart"
	TopologyHAControlPlane       = "ha-control-plane"
	TopologyBaremetalISO         = "baremetal-iso"
	TopologyFreshCluster         = "fresh-cluster"
	TopologyFleetScheduler       = "fleet-scheduler-e2e"
	TopologyDirectBootstrap      = "direct-bootstrap"
)

// Names of the canonical networks.
const (
	// NetUplink is the user-mode uplink to host services (phone-home, …).
	NetUplink = "uplink"
	// NetCluster is the isolated VLAN between the nodes of a cluster.
	NetCluster = "cluster"
)

// mac returns the canonical MAC of NIC nic on node index node of the
// topology with index topo: 52:54:00:<topo>:<node>:<nic>.
func mac(topo, node, nic int) string {
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", topo, node, nic)
}

func names(cs []Component) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// Topologies returns the canonical topologies, freshly allocated.
func Topologies() []Topology {
	return []Topology{singleNode(), haControlPlane(), baremetalISO(), freshCluster(), fleetScheduler(), directBootstrap()}
}

// LookupTopology returns a fresh copy of the canonical topology called name.
func LookupTopology(name string) (Topology, error) {
	var known []string
	for _, t := range Topologies() {
		if t.Name == name {
			return t, nil
		}
		known = append(known, t.Name)
	}
	return Topology{}, fmt.Errorf("%w: %q (known: %q)", ErrUnknownTopology, name, known)
}

func singleNode() Topology {
	p, _ := LookupProfile(SingleNodeDev)
	return Topology{
		Name:     TopologySingleNodeQuickstart,
		Profile:  SingleNodeDev,
		Networks: []Network{{Name: NetUplink, Kind: NetworkUser, CIDR: "10.0.2.0/24"}},
		Nodes: []Node{{
			Name: "quickstart", Role: RoleAllInOne, VCPUs: 2, MemoryMiB: 2048,
			Disks:      []Disk{{Name: "root", Size: 8 * GiB, Bus: BusVirtio}},
			NICs:       []NIC{{Network: NetUplink, MAC: mac(1, 1, 0)}},
			Firmware:   FirmwareDirect,
			Components: names(p.RequiredServices()),
		}},
	}
}

func controlPlaneNode(topo, i int, bootstrap bool) Node {
	comps := []string{"chainfire", "flaredb", "iam", "nix-agent"}
	if bootstrap {
		comps = append(comps, "deployer")
	}
	return Node{
		Name: fmt.Sprintf("node%02d", i), Role: RoleControlPlane, VCPUs: 2, MemoryMiB: 2048,
		Disks: []Disk{{Name: "root", Size: 8 * GiB, Bus: BusVirtio}},
		NICs: []NIC{
			{Network: NetUplink, MAC: mac(topo, i, 0)},
			{Network: NetCluster, MAC: mac(topo, i, 1)},
		},
		Firmware:   FirmwareDirect,
		Components: comps,
	}
}

func clusterNets() []Network {
	return []Network{
		{Name: NetUplink, Kind: NetworkUser, CIDR: "10.0.2.0/24"},
		{Name: NetCluster, Kind: NetworkVLAN, CIDR: "10.100.0.0/24"},
	}
}

func haControlPlane() Topology {
	t := Topology{Name: TopologyHAControlPlane, Profile: HAControlPlane, Networks: clusterNets()}
	for i := 1; i <= 3; i++ {
		t.Nodes = append(t.Nodes, controlPlaneNode(2, i, i == 1))
	}
	return t
}

func baremetalISO() Topology {
	p, _ := LookupProfile(BareMetalBootstrap)
	t := Topology{Name: TopologyBaremetalISO, Profile: BareMetalBootstrap, Networks: clusterNets()}
	for i, name := range []string{"baremetal-qemu-control-plane", "baremetal-qemu-worker"} {
		t.Nodes = append(t.Nodes, Node{
			Name: name, Role: RoleInstallerTarget, VCPUs: 1, MemoryMiB: 1024,
			Disks: []Disk{{Name: "root", Size: 2 * GiB, Bus: BusVirtio}},
			NICs: []NIC{
				{Network: NetUplink, MAC: mac(3, i+1, 0)},
				{Network: NetCluster, MAC: mac(3, i+1, 1)},
			},
			Firmware:   FirmwareUEFI,
			Components: slices.Clone(names(p.RequiredServices())),
		})
	}
	t.Nodes[1].Components = []string{"install-target", "first-boot-automation", "nix-agent"}
	t.Nodes[0].Disko = compact(controlPlaneDisko)
	t.Nodes[1].Disko = compact(workerDisko)
	return t
}

func freshCluster() Topology {
	t := Topology{Name: TopologyFreshCluster, Profile: HAControlPlane, Networks: clusterNets()}
	for i := 1; i <= 3; i++ {
		n := controlPlaneNode(4, i, i == 1)
		// The object store and volumes of the VM-hosting bundle, the
		// tenant network (so every node reaches the VMs), DNS and load
		// balancing of the network bundle.
		n.Components = append(n.Components, "lightningstor", "coronafs", "prismnet", "flashdns", "fiberlb")
		t.Nodes = append(t.Nodes, n)
	}
	for i := 4; i <= 6; i++ {
		t.Nodes = append(t.Nodes, fixtureNode(4, i, RoleWorker, 2, 2048, 8*GiB, "node-agent", "fleet-scheduler", "plasmavmc", "prismnet"))
	}
	return t
}

// fleetScheduler is the portable fleet-scheduler-e2e's small cluster: one
// control-plane node (a single chainfire member) and two workers, each
// with one vCPU (TCG-safe on two cores).
func fleetScheduler() Topology {
	t := Topology{Name: TopologyFleetScheduler, Profile: HAControlPlane, Networks: clusterNets()}
	t.Nodes = append(t.Nodes, fixtureNode(5, 1, RoleControlPlane, 1, 1024, 2*GiB, "chainfire"))
	for i := 2; i <= 3; i++ {
		t.Nodes = append(t.Nodes, fixtureNode(5, i, RoleWorker, 1, 1024, 2*GiB, "node-agent", "fleet-scheduler"))
	}
	return t
}

// directBootstrap is the portable deployer-bootstrap-e2e's and
// host-lifecycle-e2e's machine: one direct-kernel node with a blank disk
// that the deployer installs (no ISO, no firmware: TCG-safe and small)
// and then boots from its installed loader entry.
func directBootstrap() Topology {
	t := Topology{Name: TopologyDirectBootstrap, Profile: BareMetalBootstrap, Networks: clusterNets()}
	n := fixtureNode(6, 1, RoleInstallerTarget, 1, 1024, 2*GiB, "install-target", "first-boot-automation", "nix-agent")
	n.Disko = compact(workerDisko)
	t.Nodes = append(t.Nodes, n)
	return t
}

// fixtureNode is node i of topology index topo: a direct-kernel node on
// the uplink and the cluster network with one virtio disk.
func fixtureNode(topo, i int, role Role, vcpus, memMiB int, disk Size, comps ...string) Node {
	return Node{
		Name: fmt.Sprintf("node%02d", i), Role: role, VCPUs: vcpus, MemoryMiB: memMiB,
		Disks: []Disk{{Name: "root", Size: disk, Bus: BusVirtio}},
		NICs: []NIC{
			{Network: NetUplink, MAC: mac(topo, i, 0)},
			{Network: NetCluster, MAC: mac(topo, i, 1)},
		},
		Firmware:   FirmwareDirect,
		Components: comps,
	}
}

// compact returns the JSON literal s without insignificant space (as it
// round-trips through encoding/json).
func compact(s string) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic("ultracloud: bad built-in JSON: " + err.Error())
	}
	return b.Bytes()
}
