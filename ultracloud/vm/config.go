package vm

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/photoncloud/testkit/ultracloud"
)

// Sentinel errors of the package.
var (
	// ErrConfig: a machine configuration that cannot be started.
	ErrConfig = errors.New("invalid machine config")
	// ErrExited: QEMU exited (or was killed) while something waited on it.
	ErrExited = errors.New("machine exited")
	// ErrGuestCrashed: the console showed a kernel panic, an Oops, a Go
	// panic or a fatal marker of the guest agent.
	ErrGuestCrashed = errors.New("guest crashed")
	// ErrCommandFailed: a guest command exited non-zero where success was
	// required (or zero where failure was).
	ErrCommandFailed = errors.New("guest command failed")
	// ErrUnitFailed: a unit entered the failed state.
	ErrUnitFailed = errors.New("unit failed")
	// ErrRebooted: the guest rebooted while a command ran (its reply is
	// lost); the shell is usable again.
	ErrRebooted = errors.New("guest rebooted")
	// ErrUnitInactive: a waited-on unit is inactive with no pending jobs,
	// so nothing will start it (the NixOS driver fails at once too).
	ErrUnitInactive = errors.New("unit inactive")
)

// DiskFormat is an image format QEMU reads.
type DiskFormat string

// Disk formats.
const (
	FormatRaw   DiskFormat = "raw"
	FormatQCOW2 DiskFormat = "qcow2"
)

// DiskFault makes I/O on a disk fail through QEMU's blkdebug driver. Rules
// are fixed at boot: with Op "read" every read (touching Sector, if ≥ 0)
// returns Errno in the guest; with "write" every write does, with "flush"
// every flush. Other operations are untouched. Once makes the rule fire a
// single time.
type DiskFault struct {
	// Op is "read", "write" or "flush".
	Op string
	// Errno is the error the guest sees (default 5, EIO).
	Errno int
	// Sector limits the rule to requests touching that sector; -1 means any.
	Sector int64
	// Once fires the rule a single time.
	Once bool
}

// DiskConfig is one disk of a machine.
type DiskConfig struct {
	// ID names the disk in QEMU (also its serial in the guest: /dev/disk/by-id/*ID).
	ID string
	// Path is the image; created blank at Size if it does not exist.
	Path string
	// Size of a blank image to create. Ignored when Path exists.
	Size ultracloud.Size
	// Format is raw (default) or qcow2.
	Format DiskFormat
	// Bus is virtio (default), nvme or sata.
	Bus ultracloud.Bus
	// ReadOnly attaches the disk read-only.
	ReadOnly bool
	// Fault injects I/O errors (nil: none).
	Fault *DiskFault
	// BootIndex orders firmware boot devices (0: unset).
	BootIndex int
}

// GuestFwd forwards connections from the guest to a host service: the guest
// connects to GuestAddr (e.g. 10.0.2.100:8080), QEMU connects to HostAddr.
type GuestFwd struct {
	GuestAddr string
	HostAddr  string
}

// HostFwd forwards connections from the host to a guest TCP port: QEMU
// listens on HostAddr (e.g. 127.0.0.1:0, port 0 picks a free port; read it
// with Machine.HostForward) and connects to GuestPort on the guest's
// user-mode address.
type HostFwd struct {
	HostAddr  string
	GuestPort int
}

// NICConfig is one network interface.
type NICConfig struct {
	// ID names the device (QMP set_link takes it); default "nicN".
	ID string
	// MAC is required and must be unique.
	MAC string
	// User selects QEMU user-mode networking with restrict=on: the guest
	// reaches only the GuestFwd targets. Mutually exclusive with SwitchPort.
	User bool
	// GuestFwd rules for a user-mode NIC.
	GuestFwd []GuestFwd
	// HostFwd rules for a user-mode NIC: host → guest TCP forwards
	// (restrict=on still lets them through).
	HostFwd []HostFwd
	// SwitchPort is the unix socket of a Switch port (see Switch.Port).
	SwitchPort string
}

// Actions are QEMU's -action settings. Zero values leave QEMU's defaults.
type Actions struct {
	Reboot   string // reset | shutdown
	Shutdown string // poweroff | pause
	Panic    string // pause | shutdown | none
}

// Config describes one machine. Build it by hand or with FromNode.
type Config struct {
	// Name of the machine (logs, reports).
	Name string
	// Dir holds logs, disks created blank and the firmware variables; a
	// temporary directory by default (removed on Close). Sockets live in a
	// short temporary directory of their own (unix socket paths are short).
	Dir string
	// SocketDir, when set, holds the QMP and shell sockets instead of a
	// fresh temporary directory (a supervisor keeps them where its clean-up
	// finds them); it is created and, on Close, removed. Keep it short: a
	// unix socket path has at most 107 bytes.
	SocketDir string
	// QEMU binary; default from Host, else qemu-system-x86_64.
	QEMU string
	// Host is the preflight verdict: accelerator and firmware paths.
	Host ultracloud.HostEnv
	// MemoryMiB and VCPUs; defaults 512 and 1.
	MemoryMiB int
	VCPUs     int
	// Firmware: direct-kernel (default when Kernel is set), uefi or bios.
	Firmware ultracloud.Firmware
	// Kernel, Initrd and Cmdline for direct-kernel boots.
	Kernel, Initrd, Cmdline string
	// CDROM is an ISO attached to AHCI as device "cd0" (ejectable).
	CDROM string
	// CDROMBootIndex orders the CD-ROM for firmware (0: unset).
	CDROMBootIndex int
	// Disks and NICs.
	Disks []DiskConfig
	NICs  []NICConfig
	// NoBackdoor leaves out the virtconsole of the NixOS backdoor shell.
	NoBackdoor bool
	// AllowReboot keeps QEMU running across guest reboots; by default
	// -no-reboot makes a reboot (or a panic with panic=-1) end QEMU.
	AllowReboot bool
	// Actions set QEMU's -action (implies AllowReboot semantics as given).
	Actions Actions
	// StartScript starts the machine with a NixOS `run-<name>-vm` script
	// (what nixpkgs builds as config.system.build.vm, and what the NixOS
	// test driver runs) instead of a QEMU command line built from this
	// Config: the script defines the machine (kernel, disks, memory), the
	// SDK still owns the QMP, console and backdoor shell sockets. It runs
	// with the driver's environment: NIX_DISK_IMAGE (Dir/<name>.qcow2),
	// USE_TMPDIR=1, TMPDIR (Dir/tmp), SHARED_DIR (Dir/shared),
	// QEMU_KERNEL_PARAMS (Cmdline) and QEMU_OPTS (ExtraArgs). Kernel, Disks,
	// NICs and the other machine-shaping fields must then be empty.
	StartScript string
	// SingleThreadTCG runs all vCPUs of the guest on one host thread under
	// TCG (round-robin) instead of a thread per vCPU. The guest still has
	// VCPUs CPUs. When many machines share few host cores this boots them
	// faster: a vCPU waiting for a preempted sibling does not burn a core
	// (measured here, 6 nodes of 2 vCPUs on 2 cores booting at once: 26–34 s
	// to their shells instead of 33–37 s). No effect under KVM.
	SingleThreadTCG bool
	// OEMStrings are SMBIOS type 11 strings the guest reads from its
	// firmware tables: how secrets reach a machine out of band (the
	// enrolment secret: "ultracloud.enrol-secret=…").
	OEMStrings []string
	// ExtraArgs are appended to the QEMU command line.
	ExtraArgs []string
	// Logger receives lifecycle logs (default: discard).
	Logger *slog.Logger
	// ConsoleEcho, when set, receives every console line (e.g. os.Stderr).
	ConsoleEcho func(line string)
}

// PortFunc returns the switch port (a unix socket, see Switch.Port) that
// node's NIC on the VLAN network plugs into.
type PortFunc func(network, node string) (string, error)

// FromNode derives the machine of node n in topology t: vCPUs, memory,
// firmware, boot media, disks (blank at their Size in the machine's Dir
// unless the node names an image) and NICs. A NIC on a user network becomes
// a restricted user-mode uplink; a NIC on a VLAN is plugged into the port
// that port returns (nil port: VLAN NICs are an error). The topology decides
// sizes; callers add only what is theirs (guestfwd rules, kernel command
// line, Dir).
func FromNode(t ultracloud.Topology, n ultracloud.Node, host ultracloud.HostEnv, port PortFunc) (Config, error) {
	c := Config{
		Name: n.Name, Host: host, MemoryMiB: n.MemoryMiB, VCPUs: n.VCPUs, Firmware: n.Firmware,
		Kernel: n.Boot.Kernel, Initrd: n.Boot.Initrd, Cmdline: n.Boot.Cmdline, CDROM: n.Boot.ISO,
	}
	for _, d := range n.Disks {
		dc := DiskConfig{ID: d.Name, Path: d.Image, Size: d.Size, Bus: d.Bus}
		if strings.HasSuffix(d.Image, ".qcow2") {
			dc.Format = FormatQCOW2
		}
		c.Disks = append(c.Disks, dc)
	}
	kinds := map[string]ultracloud.NetworkKind{}
	for _, nw := range t.Networks {
		kinds[nw.Name] = nw.Kind
	}
	var problems []string
	for i, nic := range n.NICs {
		nc := NICConfig{ID: nic.Network, MAC: nic.MAC}
		switch kinds[nic.Network] {
		case ultracloud.NetworkUser:
			nc.User = true
		case ultracloud.NetworkVLAN:
			if port == nil {
				problems = append(problems, fmt.Sprintf("nics[%d]: network %q is a VLAN; pass a PortFunc (e.g. a Switch's Port)", i, nic.Network))
				continue
			}
			p, err := port(nic.Network, n.Name)
			if err != nil {
				problems = append(problems, fmt.Sprintf("nics[%d]: port on %q: %v", i, nic.Network, err))
				continue
			}
			nc.SwitchPort = p
		default:
			problems = append(problems, fmt.Sprintf("nics[%d]: network %q is not one of topology %q's networks", i, nic.Network, t.Name))
			continue
		}
		if slices.ContainsFunc(c.NICs, func(o NICConfig) bool { return o.ID == nc.ID }) {
			nc.ID = fmt.Sprintf("%s%d", nic.Network, i)
		}
		c.NICs = append(c.NICs, nc)
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: node %q of topology %q:\n  - %s", ErrConfig, n.Name, t.Name, strings.Join(problems, "\n  - "))
	}
	return c, nil
}

// fill applies defaults and validates.
func (c *Config) fill() error {
	if c.Name == "" {
		c.Name = "vm"
	}
	if c.StartScript != "" {
		if c.Logger == nil {
			c.Logger = slog.New(slog.DiscardHandler)
		}
		if c.Host.Accelerator == "" {
			c.Host.Accelerator = ultracloud.AccelTCG
		}
		return c.fillScript()
	}
	if c.QEMU == "" {
		c.QEMU = c.Host.QEMU
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 512
	}
	if c.VCPUs == 0 {
		c.VCPUs = 1
	}
	if c.Firmware == "" {
		c.Firmware = ultracloud.FirmwareDirect
		if c.Kernel == "" {
			c.Firmware = ultracloud.FirmwareBIOS
		}
	}
	if c.Host.Accelerator == "" {
		c.Host.Accelerator = ultracloud.AccelTCG
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var p []string
	if c.MemoryMiB < 64 {
		p = append(p, fmt.Sprintf("MemoryMiB %d: give at least 64", c.MemoryMiB))
	}
	switch c.Firmware {
	case ultracloud.FirmwareDirect:
		if c.Kernel == "" {
			p = append(p, "Firmware direct-kernel needs Kernel")
		}
	case ultracloud.FirmwareUEFI:
		if c.Host.OVMFCode == "" || c.Host.OVMFVars == "" {
			p = append(p, "Firmware uefi needs Host.OVMFCode and Host.OVMFVars (install ovmf; run vm.Preflight)")
		}
	case ultracloud.FirmwareBIOS:
	default:
		p = append(p, fmt.Sprintf("Firmware %q: use direct-kernel, uefi or bios", c.Firmware))
	}
	if c.Firmware != ultracloud.FirmwareDirect && (c.Kernel != "" || c.Initrd != "") {
		p = append(p, "Kernel/Initrd are only for direct-kernel boots")
	}
	ids := map[string]bool{}
	for i := range c.Disks {
		d := &c.Disks[i]
		if d.ID == "" {
			d.ID = fmt.Sprintf("disk%d", i)
		}
		if ids[d.ID] {
			p = append(p, fmt.Sprintf("Disks[%d]: duplicate ID %q", i, d.ID))
		}
		ids[d.ID] = true
		if d.Format == "" {
			d.Format = FormatRaw
		}
		if d.Bus == "" {
			d.Bus = ultracloud.BusVirtio
		}
		if d.Path == "" && d.Size <= 0 {
			p = append(p, fmt.Sprintf("Disks[%d] %q: needs Path or Size", i, d.ID))
		}
		if d.Fault != nil && blkdebugEvents[d.Fault.Op] == "" {
			p = append(p, fmt.Sprintf("Disks[%d].Fault.Op %q: use read, write or flush", i, d.Fault.Op))
		}
	}
	macs := map[string]bool{}
	for i := range c.NICs {
		n := &c.NICs[i]
		if n.ID == "" {
			n.ID = fmt.Sprintf("nic%d", i)
		}
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			p = append(p, fmt.Sprintf("NICs[%d].MAC %q: every NIC needs a MAC such as 52:54:00:12:34:56", i, n.MAC))
		} else if macs[hw.String()] {
			p = append(p, fmt.Sprintf("NICs[%d].MAC %s: used twice", i, hw))
		} else {
			macs[hw.String()] = true
		}
		if n.User == (n.SwitchPort != "") {
			p = append(p, fmt.Sprintf("NICs[%d]: set exactly one of User or SwitchPort", i))
		}
		if !n.User && len(n.GuestFwd) > 0 {
			p = append(p, fmt.Sprintf("NICs[%d]: GuestFwd needs User networking", i))
		}
		if !n.User && len(n.HostFwd) > 0 {
			p = append(p, fmt.Sprintf("NICs[%d]: HostFwd needs User networking", i))
		}
		for j, f := range n.HostFwd {
			if _, _, err := net.SplitHostPort(f.HostAddr); err != nil || f.GuestPort <= 0 || f.GuestPort > 65535 {
				p = append(p, fmt.Sprintf("NICs[%d].HostFwd[%d]: want HostAddr host:port (e.g. 127.0.0.1:0) and GuestPort 1-65535, got %q → %d", i, j, f.HostAddr, f.GuestPort))
			}
		}
	}
	if !slices.Contains([]ultracloud.Accel{ultracloud.AccelKVM, ultracloud.AccelTCG}, c.Host.Accelerator) {
		p = append(p, fmt.Sprintf("Host.Accelerator %q: use kvm or tcg (run vm.Preflight)", c.Host.Accelerator))
	}
	if len(p) > 0 {
		return fmt.Errorf("%w %q:\n  - %s", ErrConfig, c.Name, strings.Join(p, "\n  - "))
	}
	return nil
}

// fillScript checks a StartScript config: the script shapes the machine,
// so the fields that would shape it here must be empty.
func (c *Config) fillScript() error {
	var p []string
	set := map[string]bool{"Kernel": c.Kernel != "", "Initrd": c.Initrd != "", "Disks": len(c.Disks) > 0,
		"NICs": len(c.NICs) > 0, "CDROM": c.CDROM != "", "OEMStrings": len(c.OEMStrings) > 0,
		"Firmware": c.Firmware != "" && c.Firmware != ultracloud.FirmwareDirect}
	for _, f := range slices.Sorted(maps.Keys(set)) {
		if set[f] {
			p = append(p, fmt.Sprintf("StartScript %s defines the machine: leave %s empty (pass QEMU options in ExtraArgs, kernel parameters in Cmdline)", c.StartScript, f))
		}
	}
	if st, err := os.Stat(c.StartScript); err != nil || st.Mode()&0o111 == 0 {
		p = append(p, fmt.Sprintf("StartScript %q is not an executable file (the result/bin/run-<name>-vm of nix build .#nixosConfigurations.<name>.config.system.build.vm)", c.StartScript))
	}
	if len(p) > 0 {
		return fmt.Errorf("%w:\n  - %s", ErrConfig, strings.Join(p, "\n  - "))
	}
	return nil
}
