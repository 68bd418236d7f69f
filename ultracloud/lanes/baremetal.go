package lanes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/image"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// GuestServerAddr is where guests reach the phone-home server (QEMU
// guestfwd to the host's loopback listener).
const GuestServerAddr = "10.0.2.100:80"

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
	// Plans maps node names to disko JSON; default: ESP+root for the
	// control plane, ESP+swap+root for the worker.
	Plans map[string][]byte
	// DiskSize of each blank target disk (default 1 GiB).
	DiskSize ultracloud.Size
	// MemoryMiB of each machine (default 1024).
	MemoryMiB int
	// PhaseTimeout bounds each phase (default 2 minutes; ×3 under TCG).
	PhaseTimeout time.Duration
	// Fixture builds the default guest (default: a Builder with defaults).
	Fixture *fixture.Builder

	// afterServe runs once the server is up (tests tamper with bundles).
	afterServe func(srv *bootstrap.PhoneHomeServer, bundle *bootstrap.Bundle)
	// afterStart runs per node once its machine started (tests kill it).
	afterStart func(node string, m *vm.Machine, srv *bootstrap.PhoneHomeServer)
}

// baremetal is one run of the lane.
type baremetal struct {
	cfg     ultracloud.RunConfig
	opts    BaremetalOptions
	log     *slog.Logger
	report  *ultracloud.Report
	srv     *bootstrap.PhoneHomeServer
	topo    ultracloud.Topology
	plans   map[string]*bootstrap.DiskoPlan
	timeout time.Duration
	view    *progress
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
	if cfg.WorkDir == "" {
		return nil, errors.New("baremetal-iso: RunConfig.WorkDir is required")
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	b := &baremetal{cfg: cfg, opts: opts, log: cfg.Log()}
	b.report = ultracloud.NewReport("baremetal-iso", cfg.Host)
	b.report.Topology = ultracloud.TopologyBaremetalISO
	b.timeout = opts.PhaseTimeout
	if b.timeout == 0 {
		b.timeout = 2 * time.Minute
	}
	if cfg.Host.Accelerator == ultracloud.AccelTCG {
		b.timeout *= 3
	}
	err := b.run(ctx)
	b.report.Finish(err)
	if werr := b.writeReport(); werr != nil && err == nil {
		return b.report, werr
	}
	return b.report, nil
}

func (b *baremetal) step(node, name string, start time.Time, err error, artifacts ...ultracloud.Artifact) {
	b.stepUntil(node, name, start, time.Now(), err, artifacts...)
}

// stepUntil records a step that ended at end (e.g. the server's event time,
// so consecutive phases neither overlap nor leave gaps).
func (b *baremetal) stepUntil(node, name string, start, end time.Time, err error, artifacts ...ultracloud.Artifact) {
	s := ultracloud.Step{Name: name, Node: node, Started: start, Finished: end, Status: ultracloud.StatusPass, Artifacts: artifacts}
	if err != nil {
		s.Status, s.Reason = ultracloud.StatusFail, err.Error()
	}
	b.report.AddStep(s)
}

func (b *baremetal) run(ctx context.Context) error {
	t0 := time.Now()
	topo, err := ultracloud.LookupTopology(ultracloud.TopologyBaremetalISO)
	if err != nil {
		return err
	}
	b.topo = topo
	var names []string
	for _, n := range topo.Nodes {
		names = append(names, n.Name)
	}
	b.view = newProgress(b.cfg.Progress, names, b.log)
	defer b.view.close()

	iso, bundleDir, systemID, err := b.media(ctx)
	b.step("", "prepare-media", t0, err)
	if err != nil {
		return err
	}
	t1 := time.Now()
	bundle, err := bootstrap.PackBundle(ctx, bundleDir, systemID, filepath.Join(b.cfg.WorkDir, "bundles"))
	b.step("", "pack-bundle", t1, err)
	if err != nil {
		return err
	}

	b.plans = map[string]*bootstrap.DiskoPlan{}
	var specs []bootstrap.NodeSpec
	for _, n := range topo.Nodes {
		raw := b.opts.Plans[n.Name]
		if raw == nil {
			raw = []byte(controlPlanePlan)
			if n.Name == "baremetal-qemu-worker" {
				raw = []byte(workerPlan)
			}
		}
		plan, err := bootstrap.ParsePlan(raw)
		if err == nil {
			err = plan.Validate(true)
		}
		if err != nil {
			return fmt.Errorf("plan of %s: %w", n.Name, err)
		}
		b.plans[n.Name] = plan
		specs = append(specs, bootstrap.NodeSpec{Name: n.Name, Role: string(n.Role), MACs: []string{n.NICs[0].MAC},
			Plan: raw, TargetDisk: "/dev/vda", Bundle: bundle.Path, SystemID: systemID})
	}

	// Every run owns its state: a fresh phone-home state, and a run id that
	// enrolments and phase events carry (WaitPhase accepts only this run's).
	stateDir := filepath.Join(b.cfg.WorkDir, "phone-home")
	if err := os.RemoveAll(stateDir); err != nil {
		return fmt.Errorf("reset phone-home state: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv, err := bootstrap.NewPhoneHomeServer(bootstrap.ServerConfig{StateDir: stateDir, RunID: b.report.RunID,
		Nodes: specs, PublicURL: "http://" + GuestServerAddr, Logger: b.log})
	if err != nil {
		ln.Close()
		return err
	}
	b.srv = srv
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(served) }()
	defer func() { stop(); <-served; srv.Close() }()
	if b.opts.afterServe != nil {
		b.opts.afterServe(srv, bundle)
	}

	sw, err := vm.NewSwitch("", b.log)
	if err != nil {
		return err
	}
	defer sw.Close()

	g, gctx := errgroup.WithContext(ctx)
	for _, n := range topo.Nodes {
		g.Go(func() error { return b.node(gctx, n, iso, ln.Addr().String(), sw) })
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
	fb := b.opts.Fixture
	if fb == nil {
		if fb, err = fixture.NewBuilder(fixture.WithLogger(b.log)); err != nil {
			return
		}
	}
	arts, err := fb.Build(ctx)
	if err != nil {
		return "", "", "", fmt.Errorf("fixture: %w", err)
	}
	if iso == "" {
		iso = filepath.Join(b.cfg.WorkDir, "installer.iso")
		cmdline := "console=ttyS0 quiet panic=-1 ultracloud.role=installer ultracloud.phone-home=http://" +
			strings.TrimSuffix(GuestServerAddr, ":80") + " ultracloud.if=auto=10.0.2.15/24@10.0.2.2"
		if err = arts.BuildISO(ctx, iso, cmdline); err != nil {
			return
		}
	}
	if bundleDir == "" {
		bundleDir = filepath.Join(b.cfg.WorkDir, "system")
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

var never = regexp.MustCompile(`[^\s\S]`)

// watch fails fast: it returns when the machine exits or its console shows
// a crash, with the console tail.
func watch(ctx context.Context, m *vm.Machine) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := m.Console().Wait(ctx, never)
		if ctx.Err() == nil {
			ch <- fmt.Errorf("%w%s", err, m.Describe())
		}
	}()
	return ch
}

// waitPhase waits for node's phase within the phase timeout, failing at once
// when the node reports failed or its machine dies.
func (b *baremetal) waitPhase(ctx context.Context, node string, m *vm.Machine, p bootstrap.Phase) (bootstrap.PhaseEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	dead := watch(ctx, m)
	type res struct {
		ev  bootstrap.PhaseEvent
		err error
	}
	ch := make(chan res, 1)
	go func() {
		ev, err := b.srv.WaitPhase(ctx, node, p)
		ch <- res{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && errors.Is(r.err, bootstrap.ErrNodeFailed) {
			return r.ev, fmt.Errorf("%s at %s: %w%s", node, p, r.err, m.Describe())
		}
		if r.err != nil {
			return r.ev, fmt.Errorf("%s: %w%s", node, r.err, m.Describe())
		}
		return r.ev, nil
	case err := <-dead:
		return bootstrap.PhaseEvent{}, fmt.Errorf("%s died while waiting for %s: %w", node, p, err)
	}
}

func (b *baremetal) node(ctx context.Context, n ultracloud.Node, iso, serverAddr string, sw *vm.Switch) error {
	dir := filepath.Join(b.cfg.WorkDir, "nodes", n.Name)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	port, err := sw.Port(n.Name)
	if err != nil {
		return err
	}
	size := b.opts.DiskSize
	if size == 0 {
		size = ultracloud.GiB
	}
	mem := b.opts.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	disk := filepath.Join(dir, "disk.raw")
	cfg := vm.Config{
		Name: n.Name, Dir: dir, Host: b.cfg.Host, MemoryMiB: mem, VCPUs: 1,
		Firmware: ultracloud.FirmwareUEFI, CDROM: iso, CDROMBootIndex: 1,
		Disks: []vm.DiskConfig{{ID: "root", Path: disk, Size: size, BootIndex: 2}},
		NICs: []vm.NICConfig{
			{ID: "uplink", MAC: n.NICs[0].MAC, User: true, GuestFwd: []vm.GuestFwd{{GuestAddr: GuestServerAddr, HostAddr: serverAddr}}},
			{ID: "cluster", MAC: n.NICs[1].MAC, SwitchPort: port},
		},
		AllowReboot: true,
		Actions:     vm.Actions{Reboot: "shutdown", Shutdown: "pause"},
		Logger:      b.log,
	}
	start := time.Now()
	b.view.set(n.Name, "booting installer ISO")
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		b.step(n.Name, "boot", start, err)
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer func() {
		if !b.cfg.KeepVMs {
			m.Close()
		}
	}()
	console := ultracloud.Artifact{Name: n.Name + " console", Path: m.Console().LogPath()}
	b.report.AddArtifact(n.Name+" console", m.Console().LogPath())
	b.report.AddArtifact(n.Name+" qemu command line", filepath.Join(dir, "qemu-cmdline"))
	mark := m.QMP().Mark()
	if b.opts.afterStart != nil {
		b.opts.afterStart(n.Name, m, b.srv)
	}
	prev := start
	phases := []struct {
		step  string
		phase bootstrap.Phase
	}{
		{"plan-fetched", bootstrap.PhasePlanFetched},
		{"bundle-fetched", bootstrap.PhaseBundleFetched},
		{"disk-applied", bootstrap.PhaseDiskApplied},
		{"installed", bootstrap.PhaseInstalled},
		{"rebooting", bootstrap.PhaseRebooting},
	}
	for _, p := range phases {
		b.view.set(n.Name, "waiting for "+p.step)
		ev, err := b.waitPhase(ctx, n.Name, m, p.phase)
		if p.phase == bootstrap.PhasePlanFetched && err == nil {
			// Split boot + phone-home at the enrolment.
			for _, st := range b.srv.Nodes() {
				if st.Name == n.Name && !st.EnrolledAt.IsZero() {
					b.stepUntil(n.Name, "phone-home", prev, st.EnrolledAt, nil)
					prev = st.EnrolledAt
				}
			}
		}
		if err != nil {
			b.step(n.Name, p.step, prev, err, console)
			return err
		}
		b.stepUntil(n.Name, p.step, prev, ev.At, nil, console)
		prev = ev.At
	}

	// Deterministic reboot: QEMU paused on the guest's reset; eject the
	// ISO, restore the actions (before the reset, or cont fails), reset,
	// continue.
	b.view.set(n.Name, "rebooting from disk")
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	_, err = m.QMP().WaitEventAfter(rctx, mark, "SHUTDOWN", nil)
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
	b.step(n.Name, "reboot", prev, err, console)
	if err != nil {
		return fmt.Errorf("%s: reboot with the ISO ejected: %w%s", n.Name, err, m.Describe())
	}
	prev = time.Now()
	for _, p := range []bootstrap.Phase{bootstrap.PhaseFirstBoot, bootstrap.PhaseActive} {
		b.view.set(n.Name, "waiting for "+string(p))
		ev, err := b.waitPhase(ctx, n.Name, m, p)
		if err != nil {
			b.step(n.Name, string(p), prev, err, console)
			return err
		}
		b.stepUntil(n.Name, string(p), prev, ev.At, nil, console)
		prev = ev.At
	}
	b.view.set(n.Name, "active; verifying disk")

	// Power off, then read the disk in-process.
	vstart := time.Now()
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = m.QMP().Quit(qctx)
	if err == nil {
		m.Wait(qctx)
	}
	cancel()
	if err == nil {
		err = b.verifyDisk(ctx, n.Name, disk)
	}
	b.step(n.Name, "verify-disk", vstart, err, ultracloud.Artifact{Name: "disk", Path: disk})
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	b.view.set(n.Name, "done")
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

// verifyDisk checks the plan, the markers and the loader entry in-process.
func (b *baremetal) verifyDisk(ctx context.Context, node, disk string) error {
	plan := b.plans[node]
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
	ext, _ := plan.Disks[0].Layout(img.Size)
	var esp, root int
	for i, p := range plan.Disks[0].Partitions {
		if p.Content != nil && p.Content.Mountpoint == "/" {
			root = ext[i].Index
		}
		if p.Content != nil && p.Content.Mountpoint == "/boot" {
			esp = ext[i].Index
		}
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

func (b *baremetal) writeReport() error {
	dir := filepath.Join(b.cfg.WorkDir, "report")
	jp, xp, err := b.report.WriteFiles(dir)
	if err != nil {
		return err
	}
	svg := filepath.Join(dir, "timeline.svg")
	if err := os.WriteFile(svg, []byte(TimelineSVG(b.report)), 0o644); err != nil {
		return err
	}
	b.report.AddArtifact("timeline", svg)
	b.log.Info("report written", "json", jp, "junit", xp, "timeline", svg)
	return nil
}
