package lanes

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/image"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// DirectBootstrapOptions configure deployer-bootstrap-e2e and
// host-lifecycle-e2e (the direct-bootstrap topology's one node).
type DirectBootstrapOptions struct {
	// Fixture builds the guest (default: a Builder with defaults).
	Fixture *fixture.Builder
	// PhaseTimeout bounds each phase (default 2 minutes; ×3 under TCG).
	PhaseTimeout time.Duration
}

// directInstall is one node installed through the deployer without ISO
// or firmware: the installer boots as a direct kernel, phones home,
// fetches its plan and bundle, partitions and populates its blank disk,
// reboots; the harness then boots what the installed ESP's loader entry
// names (kernel, initrd, options), as systemd-boot would, and the
// installed system reports first-boot and active.
type directInstall struct {
	r       *Run
	node    ultracloud.Node
	srv     *deployer.PhoneHomeServer
	plan    *bootstrap.DiskoPlan
	timeout time.Duration
	// m is the installed system's machine once it booted.
	m    *vm.Machine
	disk string
}

// installDirect runs the install of the topology's first node up to
// active, recording each phase as a step.
func installDirect(ctx context.Context, r *Run, o DirectBootstrapOptions) (*directInstall, error) {
	d := &directInstall{r: r, node: r.Topology().Nodes[0], timeout: r.Scaled(cmp.Or(o.PhaseTimeout, 2*time.Minute))}
	n := d.node
	var bundle *bootstrap.Bundle
	var systemID string
	err := r.Step(ctx, "", "host-build-bundle", func(ctx context.Context) error {
		if len(n.Disko) == 0 {
			return fmt.Errorf("node %s has no disko plan: give the topology node a Disko", n.Name)
		}
		plan, err := bootstrap.ParsePlan(n.Disko)
		if err == nil {
			err = plan.Validate(true)
		}
		if err != nil {
			return fmt.Errorf("plan of %s: %w", n.Name, err)
		}
		d.plan = plan
		arts, err := r.Fixture(ctx)
		if err != nil {
			return err
		}
		sysDir, err := r.Dir("state", "system")
		if err != nil {
			return err
		}
		systemID = "fixture-" + arts.Key
		if err := fixtureSystem(arts, sysDir, systemID); err != nil {
			return err
		}
		dir, err := r.Dir("state", "bundles")
		if err == nil {
			bundle, err = bootstrap.PackBundle(ctx, sysDir, systemID, dir)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	uplink := ""
	for _, nic := range n.NICs {
		if nic.Network == ultracloud.NetUplink {
			uplink = nic.MAC
		}
	}
	srv, addr, err := r.PhoneHome(ctx, []deployer.NodeSpec{{Name: n.Name, Role: string(n.Role), MACs: []string{uplink},
		Plan: n.Disko, TargetDisk: "/dev/vda", Bundle: bundle.Path, SystemID: systemID}})
	if err != nil {
		return nil, err
	}
	d.srv = srv
	fwd := WithGuestFwd(vm.GuestFwd{GuestAddr: GuestServerAddr, HostAddr: addr})

	start := time.Now()
	m, err := r.Boot(ctx, n.Name, fwd, WithCmdline("ultracloud.role=installer", "ultracloud.phone-home=http://"+strings.TrimSuffix(GuestServerAddr, ":80")))
	if err != nil {
		r.Record(n.Name, "boot-installer", start, time.Now(), err)
		return nil, err
	}
	d.disk = m.Config().Disks[0].Path
	r.Status(n.Name, "installing")
	prev, err := d.phases(ctx, m, start, bootstrap.PhasePlanFetched, bootstrap.PhaseBundleFetched, bootstrap.PhaseDiskApplied, bootstrap.PhaseInstalled, bootstrap.PhaseRebooting)
	if err != nil {
		return nil, err
	}
	// The installer reboots; a direct-kernel machine without reboot stops.
	err = r.Step(ctx, n.Name, "reboot", func(ctx context.Context) error {
		wctx, cancel := context.WithTimeout(ctx, d.timeout)
		defer cancel()
		if err := rebootOrReset(wctx, r, n.Name, m, false, m.Wait); err != nil && wctx.Err() != nil {
			return fmt.Errorf("the installer did not reboot within %s: %w%s", d.timeout, err, m.Describe())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var entry bootstrap.LoaderEntry
	err = r.Step(ctx, n.Name, "boot-installed", func(ctx context.Context) error {
		boot, err := r.Dir("state", "installed-boot")
		if err != nil {
			return err
		}
		var kernel, initrd string
		if entry, kernel, initrd, err = installedBoot(d.disk, d.plan, boot); err != nil {
			return err
		}
		r.Event(n.Name, "loader-entry", fmt.Sprintf("%s: linux %s, initrd %v, options %s", entry.Title, entry.Linux, entry.Initrd, entry.Options))
		d.m, err = r.Boot(ctx, n.Name, fwd, WithMachine(func(c *vm.Config) {
			c.Kernel, c.Initrd, c.Cmdline = kernel, initrd, entry.Options
		}))
		return err
	})
	if err != nil {
		return nil, err
	}
	prev = time.Now()
	if _, err := d.phases(ctx, d.m, prev, bootstrap.PhaseFirstBoot, bootstrap.PhaseActive); err != nil {
		return nil, err
	}
	r.Status(n.Name, "active")
	return d, nil
}

// phases waits for each phase in turn and records it from the previous
// one's time; a failed report or a dead machine ends the wait at once.
func (d *directInstall) phases(ctx context.Context, m *vm.Machine, prev time.Time, ps ...bootstrap.Phase) (time.Time, error) {
	ev, err := waitPhases(ctx, d.r, d.srv, d.node.Name, m, d.timeout, "", prev, ps...)
	if err != nil {
		return prev, err
	}
	return ev.At, nil
}

// waitPhases waits for node to report each phase in turn (each within
// timeout, at once on a failed report or when m dies) and records each as
// a step named prefix+phase, from the previous one's time. It returns the
// last phase's event.
func waitPhases(ctx context.Context, r *Run, srv *deployer.PhoneHomeServer, node string, m *vm.Machine, timeout time.Duration, prefix string, prev time.Time, ps ...bootstrap.Phase) (bootstrap.PhaseEvent, error) {
	var ev bootstrap.PhaseEvent
	for _, p := range ps {
		r.Status(node, "waiting for "+string(p))
		c := checks.Watching(checks.Phase{Server: srv, Node: node, Phase: p, Event: &ev}, m)
		if err := checks.Eventually(c, time.Second, timeout).Run(ctx); err != nil {
			err = fmt.Errorf("%s at %s: %w", node, p, err)
			r.Record(node, prefix+string(p), prev, time.Now(), err)
			return ev, err
		}
		r.Record(node, prefix+string(p), prev, ev.At, nil)
		prev = ev.At
	}
	return ev, nil
}

// partitionOf returns the partition index of the plan's first disk
// mounted at one of mountpoints.
func partitionOf(plan *bootstrap.DiskoPlan, size int64, mountpoints ...string) (int, error) {
	ext, err := plan.Disks[0].Layout(size)
	if err != nil {
		return 0, err
	}
	for i, p := range plan.Disks[0].Partitions {
		for _, mp := range mountpoints {
			if p.Content != nil && p.Content.Mountpoint == mp {
				return ext[i].Index, nil
			}
		}
	}
	return 0, fmt.Errorf("the plan mounts nothing at %s", strings.Join(mountpoints, " or "))
}

// installedBoot does what systemd-boot does with an installed disk: it
// reads the loader entry on the ESP and the kernel and initrds it names,
// and writes them to dir for a direct-kernel boot (several initrds are
// concatenated, which the kernel unpacks as one).
func installedBoot(disk string, plan *bootstrap.DiskoPlan, dir string) (e bootstrap.LoaderEntry, kernel, initrd string, err error) {
	img, err := image.OpenDisk(disk)
	if err != nil {
		return e, "", "", err
	}
	defer img.Close()
	esp, err := partitionOf(plan, img.Size, "/boot", "/boot/efi")
	if err != nil {
		return e, "", "", err
	}
	raw, err := img.ReadFile(esp, bootstrap.LoaderEntryFile)
	if err != nil {
		return e, "", "", fmt.Errorf("the installed ESP (partition %d) has no %s: %w", esp, bootstrap.LoaderEntryFile, err)
	}
	if e, err = bootstrap.ParseLoaderEntry(raw); err != nil {
		return e, "", "", err
	}
	k, err := img.ReadFile(esp, strings.TrimPrefix(e.Linux, "/"))
	if err != nil {
		return e, "", "", fmt.Errorf("kernel %s of the loader entry: %w", e.Linux, err)
	}
	var rd bytes.Buffer
	for _, p := range e.Initrd {
		data, err := img.ReadFile(esp, strings.TrimPrefix(p, "/"))
		if err != nil {
			return e, "", "", fmt.Errorf("initrd %s of the loader entry: %w", p, err)
		}
		rd.Write(data)
	}
	kernel, initrd = filepath.Join(dir, "vmlinuz"), ""
	if err := os.WriteFile(kernel, k, 0o644); err != nil {
		return e, "", "", err
	}
	if rd.Len() > 0 {
		initrd = filepath.Join(dir, "initrd.img")
		if err := os.WriteFile(initrd, rd.Bytes(), 0o644); err != nil {
			return e, "", "", err
		}
	}
	return e, kernel, initrd, nil
}
