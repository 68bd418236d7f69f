package ultracloud

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCanonicalTopologiesValid(t *testing.T) {
	want := map[string][]string{
		TopologySingleNodeQuickstart: {"quickstart"},
		TopologyHAControlPlane:       {"node01", "node02", "node03"},
		TopologyBaremetalISO:         {"baremetal-qemu-control-plane", "baremetal-qemu-worker"},
		TopologyFreshCluster:         {"node01", "node02", "node03", "node04", "node05", "node06"},
		TopologyFleetScheduler:       {"node01", "node02", "node03"},
		TopologyDirectBootstrap:      {"node01"},
	}
	for _, topo := range Topologies() {
		t.Run(topo.Name, func(t *testing.T) {
			if err := topo.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range topo.Nodes {
				got = append(got, n.Name)
			}
			if !reflect.DeepEqual(got, want[topo.Name]) {
				t.Fatalf("nodes %q, want %q", got, want[topo.Name])
			}
		})
	}
	if len(Topologies()) != len(want) {
		t.Fatalf("%d canonical topologies, want %d", len(Topologies()), len(want))
	}
}

// The canonical topologies follow the seed: the quickstart node runs the
// required components of "single-node dev"; the bare-metal names are the
// nixosConfigurations the seed's bare-metal profile lists; every HA node runs
// nix-agent and only the bootstrap node runs deployer.
func TestCanonicalTopologiesFollowSeed(t *testing.T) {
	rows := seedProfiles(t)
	qs, _ := LookupTopology(TopologySingleNodeQuickstart)
	if got, want := qs.Nodes[0].Components, ticked(rows[0].required); !reflect.DeepEqual(got, want) {
		t.Errorf("quickstart components %q, seed requires %q", got, want)
	}
	bm, _ := LookupTopology(TopologyBaremetalISO)
	for _, n := range bm.Nodes {
		if !strings.Contains(rows[2].outputs, "`nixosConfigurations."+n.Name+"`") {
			t.Errorf("bare-metal node %q is not an output of the seed's bare-metal profile", n.Name)
		}
		if n.Firmware != FirmwareUEFI {
			t.Errorf("%s boots %s, want uefi", n.Name, n.Firmware)
		}
	}
	ha, _ := LookupTopology(TopologyHAControlPlane)
	for i, n := range ha.Nodes {
		has := func(c string) bool { return strings.Contains(strings.Join(n.Components, ","), c) }
		if !has("nix-agent") || has("deployer") != (i == 0) {
			t.Errorf("%s components %q", n.Name, n.Components)
		}
	}
}

func TestTopologyJSONRoundTrip(t *testing.T) {
	for _, topo := range Topologies() {
		data, err := json.Marshal(topo)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseTopology(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", topo.Name, err, data)
		}
		if !reflect.DeepEqual(back, topo) {
			t.Fatalf("%s: round trip differs\n got %+v\nwant %+v", topo.Name, back, topo)
		}
	}
}

// What `nix eval --json` prints: sizes as numbers of bytes.
func TestParseTopologyFromNix(t *testing.T) {
	const nix = `{"name":"lab","profile":"single-node dev","networks":[{"name":"uplink","kind":"user"}],
	  "nodes":[{"name":"n1","role":"all-in-one","vcpus":1,"memoryMiB":512,"firmware":"direct-kernel",
	  "disks":[{"name":"root","size":1073741824}],"nics":[{"network":"uplink","mac":"52:54:00:00:00:01"}]}]}`
	topo, err := ParseTopology([]byte(nix))
	if err != nil {
		t.Fatal(err)
	}
	if topo.Nodes[0].Disks[0].Size != GiB {
		t.Fatalf("size %v", topo.Nodes[0].Disks[0].Size)
	}
	_, err = ParseTopology([]byte(`{"name":"x","nodez":[]}`))
	if err == nil || !strings.Contains(err.Error(), "nodez") {
		t.Fatalf("unknown field must be named: %v", err)
	}
}

func TestTopologyValidateNamesEachProblem(t *testing.T) {
	base := func() Topology { t, _ := LookupTopology(TopologyFreshCluster); return t }
	cases := []struct {
		name, path, words string
		mutate            func(*Topology)
	}{
		{"duplicate node", "nodes[1].name", "duplicate node", func(t *Topology) { t.Nodes[1].Name = "node01" }},
		{"empty name", "nodes[2].name", "empty", func(t *Topology) { t.Nodes[2].Name = "" }},
		{"unknown role", "nodes[0].role", "unknown role", func(t *Topology) { t.Nodes[0].Role = "boss" }},
		{"zero memory", "nodes[3].memoryMiB", "needs memory", func(t *Topology) { t.Nodes[3].MemoryMiB = 0 }},
		{"zero vcpus", "nodes[3].vcpus", "vCPU", func(t *Topology) { t.Nodes[3].VCPUs = 0 }},
		{"disk without size", "nodes[0].disks[0].size", "size", func(t *Topology) { t.Nodes[0].Disks[0].Size = 0 }},
		{"duplicate disk", "nodes[0].disks[1].name", "duplicate disk", func(t *Topology) {
			t.Nodes[0].Disks = append(t.Nodes[0].Disks, t.Nodes[0].Disks[0])
		}},
		{"unknown bus", "nodes[0].disks[0].bus", "unknown bus", func(t *Topology) { t.Nodes[0].Disks[0].Bus = "scsi2" }},
		{"unknown network", "nodes[4].nics[1].network", "unknown network", func(t *Topology) { t.Nodes[4].NICs[1].Network = "storage" }},
		{"shared MAC", "nodes[5].nics[0].mac", "also used by nodes[0].nics[0]", func(t *Topology) { t.Nodes[5].NICs[0].MAC = t.Nodes[0].NICs[0].MAC }},
		{"shared MAC other case", "nodes[5].nics[0].mac", "also used", func(t *Topology) {
			t.Nodes[5].NICs[0].MAC = strings.ToUpper(t.Nodes[0].NICs[0].MAC)
		}},
		{"bad MAC", "nodes[2].nics[0].mac", "not a MAC", func(t *Topology) { t.Nodes[2].NICs[0].MAC = "52:54:00:zz" }},
		{"multicast MAC", "nodes[2].nics[0].mac", "multicast", func(t *Topology) { t.Nodes[2].NICs[0].MAC = "01:00:5e:00:00:01" }},
		{"unknown component", "nodes[0].components[0]", "unknown component \"postgres\"", func(t *Topology) { t.Nodes[0].Components[0] = "postgres" }},
		{"unknown firmware", "nodes[1].firmware", "unknown firmware", func(t *Topology) { t.Nodes[1].Firmware = "coreboot" }},
		{"unknown profile", "profile", "unknown profile", func(t *Topology) { t.Profile = "two-node" }},
		{"node profile", "nodes[1].profile", "unknown profile", func(t *Topology) { t.Nodes[1].Profile = "x" }},
		{"duplicate network", "networks[1].name", "duplicate network", func(t *Topology) { t.Networks[1].Name = t.Networks[0].Name }},
		{"network kind", "networks[0].kind", "unknown kind", func(t *Topology) { t.Networks[0].Kind = "bridge" }},
		{"bad cidr", "networks[1].cidr", "not a CIDR", func(t *Topology) { t.Networks[1].CIDR = "10.0.0.0/33" }},
		{"no nodes", "nodes", "no nodes", func(t *Topology) { t.Nodes = nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := base()
			tc.mutate(&topo)
			err := topo.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %T", err)
			}
			for _, p := range ve.Problems {
				if p.Path == tc.path && strings.Contains(p.Problem, tc.words) {
					return
				}
			}
			t.Fatalf("no problem at %s mentioning %q in:\n%v", tc.path, tc.words, err)
		})
	}
	// Several problems are all reported at once.
	topo := base()
	topo.Nodes[0].MemoryMiB = 0
	topo.Nodes[1].VCPUs = 0
	var ve *ValidationError
	if !errors.As(topo.Validate(), &ve) || len(ve.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", topo.Validate())
	}
	// Validate must not mutate the canonical topology.
	if err := base().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLookupTopologyUnknown(t *testing.T) {
	_, err := LookupTopology("fresh")
	if !errors.Is(err, ErrUnknownTopology) || !strings.Contains(err.Error(), "fresh-cluster") {
		t.Fatalf("%v", err)
	}
}

func FuzzParseTopology(f *testing.F) {
	for _, topo := range Topologies() {
		data, _ := json.Marshal(topo)
		f.Add(data)
	}
	f.Add([]byte(`{"nodes":[{"disks":[{"size":"1.5T"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := ParseTopology(data)
		if err != nil {
			return
		}
		// Anything accepted must validate and survive a round trip.
		again, err := json.Marshal(topo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseTopology(again); err != nil {
			t.Fatalf("accepted topology does not re-parse: %v\n%s", err, again)
		}
	})
}
