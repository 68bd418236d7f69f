package lanes

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/image"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// BaremetalOptions configure the baremetal-iso lane. Zero values run it on
// the fixture guest; set ISO, BundleDir, SystemID and Plans to run
// UltraCloud's own nixosConfigurations.ultracloud-iso outputs instead (see
// docs/baremetal-iso.md for the contract those images must follow).
type BaremetalOptions struct {
	// ISO is an installer ISO; default: the fixture's, built in-process.
	ISO string
	// BundleDir holds the target system (esp/ and root/); default: the
	// fixture's node system.
	BundleDir string
	// SystemID is the desired system (default: fixture-<bundle tree>).
	SystemID string
	// Plans maps node names to disko JSON; default: each node's Disko in
	// the topology.
	Plans map[string][]byte
	// Topology replaces the canonical baremetal-iso topology (machine
	// sizes, disks, plans are the topology's).
	Topology *ultracloud.Topology
	// PhaseTimeout bounds each phase (default 2 minutes; ×3 under TCG).
	PhaseTimeout time.Duration
	// Fixture builds the default guest (default: a Builder with defaults).
	Fixture *fixture.Builder

	// afterServe runs once the server is up (tests tamper with bundles).
	afterServe func(srv *deployer.PhoneHomeServer, bundle *bootstrap.Bundle)
	// afterStart runs per node once its machine started (tests kill it).
	afterStart func(node string, m *vm.Machine, srv *deployer.PhoneHomeServer)
}

// baremetal is one run of the lane.
type baremetal struct {
	r       *Run
	opts    BaremetalOptions
	srv     *deployer.PhoneHomeServer
	plans   map[string]*bootstrap.DiskoPlan
	timeout time.Duration
}

// BaremetalISO runs the canonical bare-metal proof: both nodes of the
// baremetal-iso topology boot the installer ISO under UEFI firmware, phone
// home, fetch and verify the bundle, partition their blank disks, reboot
// with the ISO ejected, boot from disk, and report the desired system
// active; then each disk is verified in-process against its plan.
func BaremetalISO(ctx context.Context, cfg ultracloud.RunConfig, opts BaremetalOptions) (*ultracloud.Report, error) {
	if cfg.Host.OVMFCode == "" {
		return nil, fmt.Errorf("baremetal-iso needs UEFI firmware: install Debian's ovmf (make deps); preflight says %q", cfg.Host.Problems)
	}
	spec := Spec{Name: "baremetal-iso", Topology: ultracloud.TopologyBaremetalISO, Topo: opts.Topology, Fixture: opts.Fixture}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		b := &baremetal{r: r, opts: opts, timeout: r.Scaled(cmp.Or(opts.PhaseTimeout, 2*time.Minute))}
		return b.run(ctx)
	})
}

func (b *baremetal) run(ctx context.Context) error {
	r := b.r
	var iso, bundleDir, systemID string
	err := r.Step(ctx, "", "prepare-media", func(ctx context.Context) (err error) {
		iso, bundleDir, systemID, err = b.media(ctx)
		return err
	})
	if err != nil {
		return err
	}
	var bundle *bootstrap.Bundle
	err = r.Step(ctx, "", "pack-bundle", func(ctx context.Context) error {
		dir, err := r.Dir("state", "bundles")
		if err == nil {
			bundle, err = bootstrap.PackBundle(ctx, bundleDir, systemID, dir)
		}
		return err
	})
	if err != nil {
		return err
	}

	b.plans = map[string]*bootstrap.DiskoPlan{}
	var specs []deployer.NodeSpec
	for _, n := range r.Topology().Nodes {
		raw := b.opts.Plans[n.Name]
		if raw == nil {
			raw = n.Disko
		}
		if len(raw) == 0 {
			return fmt.Errorf("node %s has no disko plan: give the topology node a Disko or pass Plans[%q]", n.Name, n.Name)
		}
		plan, err := bootstrap.ParsePlan(raw)
		if err == nil {
			err = plan.Validate(true)
		}
		if err != nil {
			return fmt.Errorf("plan of %s: %w", n.Name, err)
		}
		b.plans[n.Name] = plan
		specs = append(specs, deployer.NodeSpec{Name: n.Name, Role: string(n.Role), MACs: []string{n.NICs[0].MAC},
			Plan: raw, TargetDisk: "/dev/vda", Bundle: bundle.Path, SystemID: systemID})
	}
	srv, addr, err := r.PhoneHome(ctx, specs)
	if err != nil {
		return err
	}
	b.srv = srv
	if b.opts.afterServe != nil {
		b.opts.afterServe(srv, bundle)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range r.Topology().Nodes {
		g.Go(func() error { return b.node(gctx, n, iso, addr) })
	}
	return g.Wait()
}

// media returns the ISO, the bundle tree and the system id: the caller's,
// or the fixture's.
func (b *baremetal) media(ctx context.Context) (iso, bundleDir, systemID string, err error) {
	iso, bundleDir, systemID = b.opts.ISO, b.opts.BundleDir, b.opts.SystemID
	if iso != "" && bundleDir != "" && systemID != "" {
		return iso, bundleDir, systemID, nil
	}
	arts, err := b.r.Fixture(ctx)
	if err != nil {
		return "", "", "", err
	}
	state, err := b.r.Dir("state")
	if err != nil {
		return "", "", "", err
	}
	if iso == "" {
		iso = filepath.Join(state, "installer.iso")
		cmdline := "console=ttyS0 quiet panic=-1 ultracloud.role=installer ultracloud.phone-home=http://" +
			strings.TrimSuffix(GuestServerAddr, ":80") + " ultracloud.if=auto=10.0.2.15/24@10.0.2.2"
		if err = arts.BuildISO(ctx, iso, cmdline); err != nil {
			return
		}
	}
	if bundleDir == "" {
		bundleDir = filepath.Join(state, "system")
		if systemID == "" {
			systemID = "fixture-" + arts.Key
		}
		if err = fixtureSystem(arts, bundleDir, systemID); err != nil {
			return
		}
	}
	return iso, bundleDir, systemID, nil
}

// fixtureSystem lays out the fixture's installed system: systemd-boot,
// kernel and initrd on the ESP (the installer writes the loader entry), and
// the system id on the root.
func fixtureSystem(a *fixture.Artifacts, dir, systemID string) error {
	os.RemoveAll(dir)
	files := map[string]string{
		"esp/EFI/BOOT/BOOTX64.EFI":  a.SystemdBoot,
		"esp/ultracloud/vmlinuz":    a.BzImage,
		"esp/ultracloud/initrd.img": a.Initrd,
	}
	literal := map[string]string{
		"esp/loader/loader.conf":        "default ultracloud.conf\ntimeout 0\nconsole-mode keep\n",
		"root/etc/ultracloud/system-id": systemID + "\n",
		"root/etc/os-release":           "NAME=\"UltraCloud fixture\"\nID=ultracloud-fixture\n",
	}
	for dst, src := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755); err != nil {
			return err
		}
		if err := os.Link(src, filepath.Join(dir, dst)); err != nil {
			data, rerr := os.ReadFile(src)
			if rerr != nil {
				return rerr
			}
			if err := os.WriteFile(filepath.Join(dir, dst), data, 0o644); err != nil {
				return err
			}
		}
	}
	for dst, data := range literal {
		p := filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// phase waits for node's phase within the phase timeout and returns its
// event: at once on a failed report (with the node's reason) or when the
// machine dies (with its console).
func (b *baremetal) phase(ctx context.Context, node string, m *vm.Machine, p bootstrap.Phase) (bootstrap.PhaseEvent, error) {
	var ev bootstrap.PhaseEvent
	c := checks.Watching(checks.Phase{Server: b.srv, Node: node, Phase: p, Event: &ev}, m)
	err := checks.Eventually(c, time.Second, b.timeout).Run(ctx)
	if err != nil {
		return ev, fmt.Errorf("%s at %s: %w", node, p, err)
	}
	return ev, nil
}

func (b *baremetal) node(ctx context.Context, n ultracloud.Node, iso, serverAddr string) error {
	r := b.r
	start := time.Now()
	m, err := r.Boot(ctx, n.Name,
		WithGuestFwd(vm.GuestFwd{GuestAddr: GuestServerAddr, HostAddr: serverAddr}),
		WithMachine(func(c *vm.Config) {
			c.CDROM, c.CDROMBootIndex = iso, 1
			c.Disks[0].BootIndex = 2
			c.AllowReboot = true
			c.Actions = vm.Actions{Reboot: "shutdown", Shutdown: "pause"}
		}))
	if err != nil {
		r.Record(n.Name, "boot", start, time.Now(), err)
		return err
	}
	r.Status(n.Name, "booting installer ISO")
	disk := m.Config().Disks[0].Path
	mark := m.QMP().Mark()
	if b.opts.afterStart != nil {
		b.opts.afterStart(n.Name, m, b.srv)
	}
	prev := start
	phases := []bootstrap.Phase{bootstrap.PhasePlanFetched, bootstrap.PhaseBundleFetched, bootstrap.PhaseDiskApplied, bootstrap.PhaseInstalled, bootstrap.PhaseRebooting}
	for _, p := range phases {
		r.Status(n.Name, "waiting for "+string(p))
		ev, err := b.phase(ctx, n.Name, m, p)
		if p == bootstrap.PhasePlanFetched && err == nil {
			// Split boot + phone-home at the enrolment.
			for _, st := range b.srv.Nodes() {
				if st.Name == n.Name && !st.EnrolledAt.IsZero() {
					r.Record(n.Name, "phone-home", prev, st.EnrolledAt, nil)
					prev = st.EnrolledAt
				}
			}
		}
		if err != nil {
			r.Record(n.Name, string(p), prev, time.Now(), err)
			return err
		}
		r.Record(n.Name, string(p), prev, ev.At, nil)
		prev = ev.At
	}

	// Deterministic reboot: QEMU paused on the guest's reset; eject the
	// ISO, restore the actions (before the reset, or cont fails), reset,
	// continue.
	r.Status(n.Name, "rebooting from disk")
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	err = rebootOrReset(rctx, r, n.Name, m, true, func(c context.Context) error {
		_, err := m.QMP().WaitEventAfter(c, mark, "SHUTDOWN", nil)
		return err
	})
	if err == nil {
		err = b.waitPaused(rctx, m)
	}
	for _, f := range []func(context.Context) error{
		func(c context.Context) error { return m.QMP().EjectMedia(c, "cd0") },
		func(c context.Context) error {
			return m.QMP().SetAction(c, vm.Actions{Reboot: "reset", Shutdown: "poweroff"})
		},
		m.QMP().Reset,
		m.QMP().Resume,
	} {
		if err != nil {
			break
		}
		err = f(rctx)
	}
	cancel()
	r.Record(n.Name, "reboot", prev, time.Now(), err)
	if err != nil {
		return fmt.Errorf("%s: reboot with the ISO ejected: %w%s", n.Name, err, m.Describe())
	}
	prev = time.Now()
	for _, p := range []bootstrap.Phase{bootstrap.PhaseFirstBoot, bootstrap.PhaseActive} {
		r.Status(n.Name, "waiting for "+string(p))
		ev, err := b.phase(ctx, n.Name, m, p)
		if err != nil {
			r.Record(n.Name, string(p), prev, time.Now(), err)
			return err
		}
		r.Record(n.Name, string(p), prev, ev.At, nil)
		prev = ev.At
	}
	r.Status(n.Name, "active; verifying disk")

	// Power off, then read the disk in-process.
	err = r.Step(ctx, n.Name, "verify-disk", func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := m.QMP().Quit(qctx); err != nil {
			return err
		}
		m.Wait(qctx)
		return b.verifyDisk(ctx, n.Name, disk)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	r.Status(n.Name, "done")
	return nil
}

func (b *baremetal) waitPaused(ctx context.Context, m *vm.Machine) error {
	for {
		st, err := m.QMP().Status(ctx)
		if err != nil {
			return err
		}
		if !st.Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// verifyDisk checks node's disk against its plan, markers and loader entry.
func (b *baremetal) verifyDisk(ctx context.Context, node, disk string) error {
	return verifyInstalledDisk(ctx, b.plans[node], node, disk)
}

// verifyInstalledDisk checks the plan, the markers and the loader entry of
// a stopped node's disk in-process.
func verifyInstalledDisk(ctx context.Context, plan *bootstrap.DiskoPlan, node, disk string) error {
	diff, err := plan.Verify(ctx, map[string]string{plan.Disks[0].Name: disk})
	if err != nil {
		return err
	}
	if len(diff) > 0 {
		return fmt.Errorf("disk does not match its plan:\n%s", diff)
	}
	img, err := image.OpenDisk(disk)
	if err != nil {
		return err
	}
	defer img.Close()
	root, err := partitionOf(plan, img.Size, "/")
	if err != nil {
		return err
	}
	esp, err := partitionOf(plan, img.Size, "/boot", "/boot/efi")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		part int
		name string
		want string
	}{
		{root, bootstrap.InstalledMarker, `"node": "` + node + `"`},
		{root, bootstrap.FirstBootMarker, ""},
		{esp, bootstrap.LoaderEntryFile, "ultracloud.role=node"},
	} {
		data, err := img.ReadFile(f.part, f.name)
		if err != nil {
			return fmt.Errorf("%s on partition %d: %w", f.name, f.part, err)
		}
		if !strings.Contains(string(data), f.want) {
			return fmt.Errorf("%s on partition %d lacks %q:\n%s", f.name, f.part, f.want, data)
		}
	}
	return nil
}
