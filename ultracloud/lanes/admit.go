package lanes

import (
	"fmt"
	"strings"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Admit applies the seed's preflight policy to a lane. A KVM-required lane
// (the fresh-* suite) needs KVM with nested virtualization to run real
// NixOS images: without usable KVM it stops with vm.ErrAccel (exit 2) when
// realImages names any, unless the accelerator was forced (--accel,
// $ULTRACLOUD_ACCEL). On the fixture guest, which needs no nested
// virtualization, it runs under TCG and the returned host's AccelReason
// says why. Other lanes run on whatever the preflight chose.
func Admit(l ultracloud.Lane, host ultracloud.HostEnv, realImages []string, forced bool) (ultracloud.HostEnv, error) {
	if l.Requires != ultracloud.KVMRequired || host.Accelerator == ultracloud.AccelKVM {
		return host, nil
	}
	return AdmitKVMRequired("lane "+l.Name, host, realImages, forced)
}

// AdmitKVMRequired is Admit's policy for what (a lane, `cluster start`).
func AdmitKVMRequired(what string, host ultracloud.HostEnv, realImages []string, forced bool) (ultracloud.HostEnv, error) {
	if host.Accelerator == ultracloud.AccelKVM {
		return host, nil
	}
	kvm := fmt.Sprintf("/dev/kvm usable: %v (%s)", host.KVMUsable, host.KVMReason)
	switch {
	case len(realImages) > 0 && !forced:
		return host, fmt.Errorf("%w: %s boots real NixOS images (%s), which need KVM with nested virtualization; %s. "+
			"Run it on a host with /dev/kvm and nested virtualization enabled (kvm_intel nested=1 / kvm_amd nested=1), "+
			"or force TCG with --accel tcg (very slow)", vm.ErrAccel, what, strings.Join(realImages, ", "), kvm)
	case len(realImages) > 0:
		host.AccelReason = fmt.Sprintf("%s is KVM-required but %s was forced for real images: %s", what, host.Accelerator, kvm)
	default:
		host.AccelReason = fmt.Sprintf("%s is KVM-required for real images; the fixture guest needs no nested virtualization, so it runs under %s (%s)", what, host.Accelerator, kvm)
	}
	return host, nil
}

// RealImages names the nodes of topo that boot something other than the
// fixture guest: boot media of their own, disk images, or the real NixOS
// outputs a driver was given (-iso, -bundle).
func RealImages(topo ultracloud.Topology, o DriverOptions) []string {
	var out []string
	for _, n := range topo.Nodes {
		real := n.Boot.Kernel != "" || n.Boot.ISO != ""
		for _, d := range n.Disks {
			real = real || d.Image != ""
		}
		if real {
			out = append(out, n.Name)
		}
	}
	if o.ISO != "" {
		out = append(out, "the -iso "+o.ISO)
	}
	if o.Bundle != "" {
		out = append(out, "the -bundle "+o.Bundle)
	}
	return out
}
