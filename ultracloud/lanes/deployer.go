package lanes

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// DeployerSmokeOptions configure the deployer-vm-smoke lane.
type DeployerSmokeOptions struct {
	Fixture *fixture.Builder
	// System is a store path built on this host (a NixOS toplevel, say)
	// whose closure the node activates. Default: a small system built here
	// with real Nix (BuildSmokeSystem: three store paths).
	System string
	// Nix is the nix binary (default: nix on PATH).
	Nix string

	// tamper, in tests, changes the exported binary cache before it is
	// packed (a path left out, a NAR corrupted).
	tamper func(cache string, paths []string) error
}

// DeployerSmokeTopology is deployer-vm-smoke's machine: one small worker
// whose only network is the uplink to the deployer.
func DeployerSmokeTopology() ultracloud.Topology {
	return ultracloud.Topology{Name: "deployer-vm-smoke", Profile: ultracloud.HAControlPlane,
		Networks: []ultracloud.Network{{Name: ultracloud.NetUplink, Kind: ultracloud.NetworkUser, CIDR: "10.0.2.0/24"}},
		Nodes: []ultracloud.Node{{Name: "deployer-smoke", Role: ultracloud.RoleWorker, VCPUs: 1, MemoryMiB: 512,
			NICs: []ultracloud.NIC{{Network: ultracloud.NetUplink, MAC: "52:54:00:d0:00:01"}}, Firmware: ultracloud.FirmwareDirect}},
	}
}

// DeployerVMSmoke proves a node activates a host-built Nix closure without
// building: the host builds a system with real Nix and exports its closure
// as a binary cache (a NAR and narinfo per store path) into the node's
// bundle; the node's nix-agent (started at boot; the fixture's double, or
// a real image's agent) phones home, learns its desired system, fetches
// the bundle, installs every path into /nix/store with its NarHash
// checked and the closure complete, switches the system profile, runs the
// activation, and reports active with the store path. The lane only
// waits on those reports, then checks the node: the current system, the
// activation's effect, and the store byte for byte against the host's.
func DeployerVMSmoke(ctx context.Context, cfg ultracloud.RunConfig, o DeployerSmokeOptions) (*ultracloud.Report, error) {
	topo := DeployerSmokeTopology()
	return Execute(ctx, cfg, Spec{Name: "deployer-vm-smoke", Topo: &topo, Fixture: o.Fixture}, func(ctx context.Context, r *Run) error {
		node := topo.Nodes[0]
		system := o.System
		var paths []string
		var b *bootstrap.Bundle
		err := r.Step(ctx, "", "host-build-closure", func(ctx context.Context) error {
			dir, err := r.Dir("state", "closure")
			if err != nil {
				return err
			}
			if system == "" {
				if system, err = BuildSmokeSystem(ctx, o.Nix, dir, r.ID()); err != nil {
					return fmt.Errorf("%w (deployer-vm-smoke builds its target with nix: install nix-bin, make deps)", err)
				}
			}
			if paths, err = ClosureOf(ctx, o.Nix, system); err != nil {
				return err
			}
			tree := filepath.Join(dir, "bundle")
			cache := filepath.Join(tree, bootstrap.TargetNixCache)
			if err := ExportClosure(ctx, o.Nix, system, cache); err != nil {
				return err
			}
			if o.tamper != nil {
				if err := o.tamper(cache, paths); err != nil {
					return err
				}
			}
			r.Event("", "closure", fmt.Sprintf("%s: %d store paths", system, len(paths)))
			bundles, err := r.Dir("state", "bundles")
			if err == nil {
				b, err = bootstrap.PackBundle(ctx, tree, system, bundles)
			}
			return err
		})
		if err != nil {
			return err
		}
		srv, addr, err := r.PhoneHome(ctx, []deployer.NodeSpec{{Name: node.Name, Role: "worker", MACs: []string{node.NICs[0].MAC}, Bundle: b.Path, SystemID: system}})
		if err != nil {
			return err
		}
		timeout := r.Scaled(time.Minute)
		m, err := r.Boot(ctx, node.Name, WithCmdline("ultracloud.role=nix-agent", "ultracloud.phone-home=http://"+strings.TrimSuffix(GuestServerAddr, ":80")),
			WithGuestFwd(vm.GuestFwd{GuestAddr: GuestServerAddr, HostAddr: addr}))
		if err != nil {
			return err
		}
		// The agent acts by itself; the lane waits on its reports.
		active, err := waitPhases(ctx, r, srv, node.Name, m, timeout, "agent ", time.Now(),
			bootstrap.PhaseBundleFetched, bootstrap.PhaseInstalled, bootstrap.PhaseActive)
		if err != nil {
			return err
		}
		if active.System != system {
			return fmt.Errorf("the agent reported %q active, the desired system is %s", active.System, system)
		}
		sh := m.Shell()
		r.Step(ctx, node.Name, "switched", func(ctx context.Context) error {
			got, err := sh.Succeed(ctx, "readlink /run/current-system; readlink -f /nix/var/nix/profiles/system")
			if want := system + "\n" + system; err == nil && strings.TrimSpace(got) != want {
				err = fmt.Errorf("current system and profile are %q, want %s", strings.TrimSpace(got), system)
			}
			return err
		})
		if o.System == "" { // a caller's system activates what it activates
			r.Step(ctx, node.Name, "activated", func(ctx context.Context) error {
				got, err := sh.Succeed(ctx, "cat /run/ultracloud/activated")
				if err == nil && (!strings.Contains(got, "hello from a host-built closure") || !strings.Contains(got, system)) {
					err = fmt.Errorf("the activation script left %q; want the greeting of the dependency and %s", got, system)
				}
				return err
			})
		}
		// Every store path on the node is the host's, byte for byte.
		r.Step(ctx, node.Name, "host-built-closure-in-store", func(ctx context.Context) error {
			want, err := storeManifest(ctx, o.Nix, paths)
			if err != nil {
				return err
			}
			got, err := sh.Succeed(ctx, storeManifestScript(paths))
			if err != nil {
				return err
			}
			if d := diffLines(want, strings.Split(strings.TrimSpace(got), "\n")); len(d) > 0 {
				return fmt.Errorf("the node's store is not the host-built closure:\n  %s", strings.Join(d, "\n  "))
			}
			return nil
		})
		r.Step(ctx, node.Name, "no-build-tools", func(ctx context.Context) error {
			// A guard on the guest: the agent has no way to build.
			if tools, _ := sh.Succeed(ctx, "for t in nix nix-build nix-store gcc cc go make; do command -v $t || true; done"); strings.TrimSpace(tools) != "" {
				return fmt.Errorf("build tools present in the guest: %s", tools)
			}
			return nil
		})
		return nil
	})
}
