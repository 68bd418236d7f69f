package lanes

import (
	"errors"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func TestAdmitPolicy(t *testing.T) {
	tcg := ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG, KVMReason: "kvm_pvm: guest hangs"}
	kvm := ultracloud.HostEnv{Accelerator: ultracloud.AccelKVM, KVMUsable: true, AccelReason: "usable"}
	fresh := ultracloud.Lane{Name: "fresh-smoke", Requires: ultracloud.KVMRequired}
	tcgOK := ultracloud.Lane{Name: "baremetal-iso", Requires: ultracloud.TCGOK}
	for _, tc := range []struct {
		name   string
		lane   ultracloud.Lane
		host   ultracloud.HostEnv
		images []string
		forced bool
		err    bool
		reason string
	}{
		{name: "tcg-ok lane on tcg", lane: tcgOK, host: tcg},
		{name: "kvm-required on kvm", lane: fresh, host: kvm, images: []string{"node01"}, reason: "usable"},
		{name: "kvm-required, real images, no kvm", lane: fresh, host: tcg, images: []string{"node01"}, err: true},
		{name: "kvm-required, real images, forced", lane: fresh, host: tcg, images: []string{"node01"}, forced: true, reason: "was forced"},
		{name: "kvm-required on the fixture", lane: fresh, host: tcg, reason: "fixture guest needs no nested virtualization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Admit(tc.lane, tc.host, tc.images, tc.forced)
			if tc.err {
				if !errors.Is(err, vm.ErrAccel) || !strings.Contains(err.Error(), "/dev/kvm") || !strings.Contains(err.Error(), "nested virtualization") || !strings.Contains(err.Error(), "node01") {
					t.Fatalf("want ErrAccel naming /dev/kvm, nested virtualization and the images: %v", err)
				}
				return
			}
			if err != nil || !strings.Contains(got.AccelReason, tc.reason) {
				t.Fatalf("%v, reason %q (want %q)", err, got.AccelReason, tc.reason)
			}
		})
	}
}

func TestRealImages(t *testing.T) {
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyFreshCluster)
	if got := RealImages(topo, DriverOptions{}); len(got) != 0 {
		t.Fatalf("the canonical topology boots the fixture: %v", got)
	}
	topo.Nodes[2].Boot.Kernel = "/nix/store/x-linux/bzImage"
	topo.Nodes[4].Disks[0].Image = "/nix/store/y-nixos.qcow2"
	got := RealImages(topo, DriverOptions{ISO: "result/iso/x.iso"})
	if strings.Join(got, ",") != "node03,node05,the -iso result/iso/x.iso" {
		t.Fatalf("%v", got)
	}
}
