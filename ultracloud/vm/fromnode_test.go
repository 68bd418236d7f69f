package vm

import (
	"errors"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

// Every node of every canonical topology maps to a config Start accepts,
// with the topology's sizes, disks and networks.
func TestFromNodeCanonicalTopologies(t *testing.T) {
	host := ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG, OVMFCode: "/fw/CODE.fd", OVMFVars: "/fw/VARS.fd"}
	for _, topo := range ultracloud.Topologies() {
		for _, n := range topo.Nodes {
			t.Run(topo.Name+"/"+n.Name, func(t *testing.T) {
				if n.Firmware == ultracloud.FirmwareDirect {
					n.Boot.Kernel = "/boot/vmlinux"
				}
				var plugged []string
				c, err := FromNode(topo, n, host, func(network, node string) (string, error) {
					plugged = append(plugged, network+"/"+node)
					return "/run/sw/" + node + ".sock", nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := c.fill(); err != nil {
					t.Fatal(err)
				}
				if c.MemoryMiB != n.MemoryMiB || c.VCPUs != n.VCPUs || len(c.Disks) != len(n.Disks) || len(c.NICs) != len(n.NICs) {
					t.Fatalf("config %+v does not follow node %+v", c, n)
				}
				for i, d := range n.Disks {
					if c.Disks[i].Size != d.Size || c.Disks[i].ID != d.Name {
						t.Fatalf("disk %d: %+v, node says %+v", i, c.Disks[i], d)
					}
				}
				for i, nic := range n.NICs {
					want := nic.Network == ultracloud.NetUplink
					if c.NICs[i].User != want || c.NICs[i].MAC != nic.MAC {
						t.Fatalf("nic %d: %+v for %+v", i, c.NICs[i], nic)
					}
				}
				for _, p := range plugged {
					if !strings.HasPrefix(p, ultracloud.NetCluster+"/") {
						t.Fatalf("plugged into %s", p)
					}
				}
			})
		}
	}
}

func TestFromNodeErrors(t *testing.T) {
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyFreshCluster)
	n := topo.Nodes[0]
	if _, err := FromNode(topo, n, ultracloud.HostEnv{}, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "PortFunc") {
		t.Fatalf("VLAN without ports: %v", err)
	}
	n.NICs[0].Network = "nowhere"
	_, err := FromNode(topo, n, ultracloud.HostEnv{}, func(string, string) (string, error) { return "/s", nil })
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Fatalf("unknown network: %v", err)
	}
}
