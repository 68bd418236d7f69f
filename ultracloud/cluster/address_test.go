package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
)

// Static addresses come from the topology; WithNodes() boots nothing.
func TestAddressesAndEmptyStart(t *testing.T) {
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyFreshCluster)
	c, err := cluster.Start(context.Background(), topo, ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG}, cluster.WithNodes())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cases := []struct {
		node, network, want, err string
	}{
		{"node01", ultracloud.NetCluster, "10.100.0.1", ""},
		{"node06", ultracloud.NetCluster, "10.100.0.6", ""},
		{"node04", ultracloud.NetUplink, "10.0.2.15", ""},
		{"node04", "storage", "", "no network"},
		{"node99", ultracloud.NetCluster, "", "unknown node"},
	}
	for _, tc := range cases {
		a, err := c.Address(tc.node, tc.network)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s/%s: %v, want %q", tc.node, tc.network, err, tc.err)
			}
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("%s/%s: %v %v, want %s", tc.node, tc.network, a, err, tc.want)
		}
	}
	if _, err := c.Node("node01"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("WithNodes() booted node01: %v", err)
	}
	if _, err := c.Node("node99"); !errors.Is(err, cluster.ErrUnknownNode) {
		t.Fatalf("%v", err)
	}
	if err := c.Partition([]string{"node01"}, []string{"nodeX"}); !errors.Is(err, cluster.ErrUnknownNode) {
		t.Fatalf("partition with an unknown node: %v", err)
	}
}
