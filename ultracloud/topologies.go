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
	return []Topology{singleNode(), haControlPlane(), baremetalISO(), freshCluster()}
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
		t.Nodes = append(t.Nodes, controlPlaneNode(4, i, i == 1))
	}
	for i := 4; i <= 6; i++ {
		t.Nodes = append(t.Nodes, Node{
			Name: fmt.Sprintf("node%02d", i), Role: RoleWorker, VCPUs: 2, MemoryMiB: 2048,
			Disks: []Disk{{Name: "root", Size: 8 * GiB, Bus: BusVirtio}},
			NICs: []NIC{
				{Network: NetUplink, MAC: mac(4, i, 0)},
				{Network: NetCluster, MAC: mac(4, i, 1)},
			},
			Firmware:   FirmwareDirect,
			Components: []string{"node-agent", "fleet-scheduler", "plasmavmc", "prismnet"},
		})
	}
	return t
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
