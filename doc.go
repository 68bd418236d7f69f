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
//   - ultracloud/image: initramfs (cpio), disk images and filesystems written
//     and read in-process; ultracloud/image/iso: ISO 9660 with El Torito.
//   - ultracloud/bootstrap: the guest side of the bare-metal bootstrap
//     protocol (Client, Installer, Agent) and what both sides share
//     (DiskoPlan, Bundle, the protocol types). PID 1 of the fixture imports
//     it: no server, no state database, no ISO code.
//   - ultracloud/deployer: the host side, PhoneHomeServer (bbolt state).
//   - ultracloud/checks: Check, its combinators (All, Any, Eventually: fail
//     at once on a dead machine) and concrete checks (unit active, command,
//     HTTP, port, phone-home phase, disk file, Nix guards).
//   - ultracloud/fixture: the embedded default guest (Debian kernel +
//     initramfs with cmd/ultracloud-guest as PID 1).
//   - ultracloud/cluster: a Topology running (machines, switches, static
//     addresses) with its fault API, every fault an event.
//   - ultracloud/lanes: the run scaffold, the one driver (lanes.Main), every
//     documented lane composed from the above, and lanes.Registry.
//   - examples/<lane>: one small driver per lane, what a Nix check runs.
//   - cmd/ultracloud: the CLI shim (`ultracloud env`, `ultracloud lanes`,
//     `ultracloud cluster <verb>`).
//
// Imports point one way, down this list and never back up (each package →
// the packages of this module it imports; TestImportArrows checks this
// block against `go list`):
//
//	ultracloud           → (nothing of ours: the vocabulary)
//	ultracloud/vm        → ultracloud
//	ultracloud/image     → (nothing of ours)
//	ultracloud/image/iso → ultracloud/image
//	ultracloud/bootstrap → ultracloud, ultracloud/image
//	ultracloud/deployer  → ultracloud/bootstrap
//	ultracloud/checks    → ultracloud, ultracloud/vm, ultracloud/bootstrap, ultracloud/deployer, ultracloud/image
//	ultracloud/doubles   → (nothing of ours: the control-plane test doubles)
//	ultracloud/fixture   → ultracloud/image, ultracloud/image/iso
//	ultracloud/cluster   → ultracloud, ultracloud/vm, ultracloud/fixture
//	ultracloud/storagebench → (nothing of ours: disk measurements, fio-equivalent)
//	ultracloud/lanes     → ultracloud, ultracloud/vm, ultracloud/image, ultracloud/bootstrap, ultracloud/deployer, ultracloud/checks, ultracloud/fixture, ultracloud/cluster, ultracloud/doubles, ultracloud/storagebench
//	examples/<lane>      → ultracloud/lanes
//	cmd/ultracloud       → ultracloud, ultracloud/vm, ultracloud/image, ultracloud/image/iso, ultracloud/bootstrap, ultracloud/deployer, ultracloud/checks, ultracloud/cluster, ultracloud/lanes
//	cmd/ultracloud-guest → ultracloud, ultracloud/bootstrap, ultracloud/storagebench
//	cmd/ultracloud-doubles → ultracloud/doubles
//	cmd/ultracloud-webapp → (nothing of ours: the demo tenant app)
//
// A lane is a function on the run scaffold (lanes.Execute, lanes.Run): it
// boots its topology's nodes (Run.Boot), waits on checks (Run.Wait with
// checks.UnitActive, checks.Phase, …) and records steps; the scaffold
// writes the report as JSON, JUnit XML and a timeline. lanes.Main is the
// one driver behind examples/<lane>, `ultracloud cluster <lane>` and the
// flake checks. See docs/adding-a-lane.md.
package testkit
