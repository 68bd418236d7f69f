// Package testkit is the UltraCloud testkit: UltraCloud's validation lanes
// (single-node-quickstart, baremetal-iso, fresh-smoke, …) written, run and
// composed in Go, on real QEMU, firmware, disks and networks.
//
// This package holds no code; it is the map of the module.
//
//   - [github.com/photoncloud/testkit/ultracloud]: the vocabulary, no I/O:
//     Profile, Component, Topology, Node, Lane, Registry, Report (JSON and
//     JUnit), HostEnv.
//   - ultracloud/vm: QEMU machines. Preflight decides the accelerator (KVM
//     only when it is usable for Linux guests, else TCG).
//   - ultracloud/image: ISO, initramfs (cpio) and disk images written and read
//     in-process.
//   - ultracloud/bootstrap: PhoneHomeServer, Client, Installer, DiskoPlan,
//     Bundle — the bare-metal bootstrap protocol.
//   - ultracloud/checks: Check and its combinators.
//   - ultracloud/fixture: the embedded default guest (Debian kernel +
//     initramfs with cmd/ultracloud-guest as PID 1).
//   - ultracloud/lanes: every documented lane, composed from the above, and
//     lanes.Registry.
//   - examples/<lane>: one small driver per lane, what a Nix check runs.
//   - cmd/ultracloud: the CLI shim (`ultracloud env`, `ultracloud lanes`,
//     `ultracloud cluster <verb>`).
//
// Imports point one way: ultracloud ← vm, image ← bootstrap ← checks ←
// fixture ← lanes ← examples, cmd.
//
// A lane is assembled by picking a canonical topology
// (ultracloud.LookupTopology), running the host preflight (vm.Preflight),
// booting the nodes, waiting on checks, and recording each step in an
// ultracloud.Report, which is written as JSON and JUnit XML.
package testkit
