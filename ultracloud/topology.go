package ultracloud

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Role is what a node does in its topology.
type Role string

// Node roles.
const (
	RoleControlPlane    Role = "control-plane"
	RoleWorker          Role = "worker"
	RoleAllInOne        Role = "all-in-one"
	RoleInstallerTarget Role = "installer-target"
)

var roles = []Role{RoleControlPlane, RoleWorker, RoleAllInOne, RoleInstallerTarget}

// Firmware is how a node boots.
type Firmware string

// Firmware kinds.
const (
	// FirmwareDirect boots a kernel and initrd directly (QEMU -kernel).
	FirmwareDirect Firmware = "direct-kernel"
	// FirmwareUEFI boots through OVMF with a per-VM variable store.
	FirmwareUEFI Firmware = "uefi"
	// FirmwareBIOS boots through SeaBIOS.
	FirmwareBIOS Firmware = "bios"
)

var firmwares = []Firmware{FirmwareDirect, FirmwareUEFI, FirmwareBIOS}

// NetworkKind is how a network is realised.
type NetworkKind string

// Network kinds.
const (
	// NetworkUser is QEMU user-mode networking: an uplink to host services
	// only (restrict=on plus guestfwd rules).
	NetworkUser NetworkKind = "user"
	// NetworkVLAN is an isolated L2 segment on an in-process switch.
	NetworkVLAN NetworkKind = "vlan"
)

// Network is a named network that nodes attach NICs to.
type Network struct {
	// Name is unique within the topology.
	Name string `json:"name"`
	// Kind is user or vlan.
	Kind NetworkKind `json:"kind"`
	// CIDR is the subnet the guests use, e.g. "10.0.2.0/24" (optional).
	CIDR string `json:"cidr,omitempty"`
}

// Bus is how a disk is attached.
type Bus string

// Disk buses.
const (
	BusVirtio Bus = "virtio"
	BusNVMe   Bus = "nvme"
	BusSATA   Bus = "sata"
)

var buses = []Bus{BusVirtio, BusNVMe, BusSATA}

// Disk is a block device of a node: blank at Size, or backed by Image.
type Disk struct {
	// Name is unique within the node, e.g. "root".
	Name string `json:"name"`
	// Size of a blank disk, or the size to grow Image to. Zero with an Image
	// keeps the image's own size.
	Size Size `json:"size,omitempty"`
	// Bus defaults to virtio.
	Bus Bus `json:"bus,omitempty"`
	// Image is a path to a raw or qcow2 image to boot or attach.
	Image string `json:"image,omitempty"`
}

// NIC is a network interface on a named network.
type NIC struct {
	// Network names a Network of the topology.
	Network string `json:"network"`
	// MAC is the interface's address; every NIC of a topology needs its own.
	MAC string `json:"mac"`
}

// BootMedia points at what a node boots from. Lanes fill these at run time
// (fixture builds or `nix build` outputs); a topology may leave them empty.
type BootMedia struct {
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	ISO     string `json:"iso,omitempty"`
}

// Node is one machine of a topology.
type Node struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Profile defaults to the topology's profile.
	Profile   ProfileName `json:"profile,omitempty"`
	VCPUs     int         `json:"vcpus"`
	MemoryMiB int         `json:"memoryMiB"`
	Disks     []Disk      `json:"disks,omitempty"`
	NICs      []NIC       `json:"nics,omitempty"`
	Firmware  Firmware    `json:"firmware"`
	Boot      BootMedia   `json:"boot,omitzero"`
	// Components the node runs, by name; each must belong to its profile.
	Components []string `json:"components,omitempty"`
	// Disko is the node's disko plan (disko's JSON, as `nix eval --json`
	// prints config.disko.devices) for nodes that install onto their disks.
	Disko json.RawMessage `json:"disko,omitempty"`
}

// Topology is a set of nodes and the networks between them.
type Topology struct {
	Name     string      `json:"name"`
	Profile  ProfileName `json:"profile"`
	Networks []Network   `json:"networks,omitempty"`
	Nodes    []Node      `json:"nodes"`
}

// Node returns the node called name.
func (t *Topology) Node(name string) (*Node, bool) {
	for i := range t.Nodes {
		if t.Nodes[i].Name == name {
			return &t.Nodes[i], true
		}
	}
	return nil, false
}

// Clone returns a deep copy of t.
func (t Topology) Clone() Topology {
	c := t
	c.Networks = slices.Clone(t.Networks)
	c.Nodes = make([]Node, len(t.Nodes))
	for i, n := range t.Nodes {
		n.Disks = slices.Clone(n.Disks)
		n.NICs = slices.Clone(n.NICs)
		n.Components = slices.Clone(n.Components)
		n.Disko = slices.Clone(n.Disko)
		c.Nodes[i] = n
	}
	return c
}

// ParseTopology decodes a topology from JSON (as `nix eval --json` prints
// it), rejecting unknown fields, and validates it.
func ParseTopology(data []byte) (Topology, error) {
	var t Topology
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Topology{}, fmt.Errorf("topology JSON: %w", err)
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// Validate checks the topology and returns a *ValidationError naming every
// problem, or nil.
func (t Topology) Validate() error {
	var p problems
	if t.Name == "" {
		p.add("name", "empty; give the topology a name")
	}
	if _, err := LookupProfile(t.Profile); err != nil {
		p.add("profile", "unknown profile %q; use one of %q, %q, %q", t.Profile, SingleNodeDev, HAControlPlane, BareMetalBootstrap)
	}
	nets := map[string]bool{}
	for i, n := range t.Networks {
		path := fmt.Sprintf("networks[%d]", i)
		switch {
		case n.Name == "":
			p.add(path+".name", "empty")
		case nets[n.Name]:
			p.add(path+".name", "duplicate network %q", n.Name)
		}
		nets[n.Name] = true
		if n.Kind != NetworkUser && n.Kind != NetworkVLAN {
			p.add(path+".kind", "unknown kind %q; use %q or %q", n.Kind, NetworkUser, NetworkVLAN)
		}
		if n.CIDR != "" {
			if _, _, err := net.ParseCIDR(n.CIDR); err != nil {
				p.add(path+".cidr", "%q is not a CIDR such as 10.0.2.0/24", n.CIDR)
			}
		}
	}
	if len(t.Nodes) == 0 {
		p.add("nodes", "no nodes; a topology needs at least one")
	}
	names := map[string]bool{}
	macs := map[string]string{}
	for i, n := range t.Nodes {
		path := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Name == "":
			p.add(path+".name", "empty")
		case names[n.Name]:
			p.add(path+".name", "duplicate node %q", n.Name)
		}
		names[n.Name] = true
		if !slices.Contains(roles, n.Role) {
			p.add(path+".role", "unknown role %q; use one of %q", n.Role, roles)
		}
		prof := t.Profile
		if n.Profile != "" {
			prof = n.Profile
		}
		profile, err := LookupProfile(prof)
		if err != nil && n.Profile != "" {
			p.add(path+".profile", "unknown profile %q", n.Profile)
		}
		if n.VCPUs <= 0 {
			p.add(path+".vcpus", "%d; a node needs at least 1 vCPU", n.VCPUs)
		}
		if n.MemoryMiB <= 0 {
			p.add(path+".memoryMiB", "%d; a node needs memory (e.g. 1024)", n.MemoryMiB)
		}
		if !slices.Contains(firmwares, n.Firmware) {
			p.add(path+".firmware", "unknown firmware %q; use one of %q", n.Firmware, firmwares)
		}
		disks := map[string]bool{}
		for j, d := range n.Disks {
			dp := fmt.Sprintf("%s.disks[%d]", path, j)
			switch {
			case d.Name == "":
				p.add(dp+".name", "empty")
			case disks[d.Name]:
				p.add(dp+".name", "duplicate disk %q", d.Name)
			}
			disks[d.Name] = true
			if d.Size <= 0 && d.Image == "" {
				p.add(dp+".size", "a disk needs a size (blank disk) or an image")
			}
			if d.Bus != "" && !slices.Contains(buses, d.Bus) {
				p.add(dp+".bus", "unknown bus %q; use one of %q", d.Bus, buses)
			}
		}
		for j, nic := range n.NICs {
			np := fmt.Sprintf("%s.nics[%d]", path, j)
			if !nets[nic.Network] {
				p.add(np+".network", "unknown network %q; declare it under networks", nic.Network)
			}
			hw, err := net.ParseMAC(nic.MAC)
			switch {
			case err != nil || len(hw) != 6:
				p.add(np+".mac", "%q is not a MAC such as 52:54:00:12:34:56", nic.MAC)
			case hw[0]&1 == 1:
				p.add(np+".mac", "%q is a multicast address; the first octet must be even", nic.MAC)
			default:
				key := hw.String()
				if other, dup := macs[key]; dup {
					p.add(np+".mac", "MAC %s is also used by %s; every NIC needs its own", key, other)
				}
				macs[key] = np
			}
		}
		for j, c := range n.Components {
			if err != nil {
				break
			}
			if _, ok := profile.Component(c); !ok {
				p.add(fmt.Sprintf("%s.components[%d]", path, j), "unknown component %q for profile %q", c, prof)
			}
		}
	}
	return p.err(fmt.Sprintf("topology %q", t.Name))
}
