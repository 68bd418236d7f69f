package lanes

import (
	"context"

	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// LaneFunc is the body of a lane: it receives its Run, boots machines and
// records steps through it. A step that failed fails the lane by itself;
// a returned error fails it too (with that error as the reason).
type LaneFunc func(ctx context.Context, r *Run) error

// Spec names a lane for the scaffold.
type Spec struct {
	// Name is the lane's name (the report's).
	Name string
	// Topology names the canonical topology the lane boots ("" for none).
	Topology string
	// Topo, when set, is used instead of the canonical topology.
	Topo *ultracloud.Topology
	// Fixture builds the default guest (default: a Builder with defaults).
	Fixture *fixture.Builder
	// SSH gives the run's cluster SSH keys (kept in WorkDir/state/ssh):
	// Cluster.SSH logs in to its nodes (see cluster.WithSSH).
	SSH bool
	// Persist mounts each fixture node's first disk on /var/lib, so its
	// state survives a restart (see cluster.WithPersist).
	Persist bool
}

// Run-owned directories of a work dir: emptied when a run starts, so a
// rerun in the same work dir redoes the work and never passes on what an
// earlier run left. Everything else in the work dir is left alone.
var runOwned = []string{"nodes", "state", "report"}

// Run is one run of a lane: the scaffold every lane is built on. It owns
// the work dir (see Execute), the run id, the logger, the progress view,
// the steps, events and artifacts of the report, and the machines and
// switches it boots from the lane's topology; Execute writes report.json,
// junit.xml and timeline.svg once, at the end, listing every artifact.
type Run struct {
	cfg     ultracloud.RunConfig
	spec    Spec
	topo    ultracloud.Topology
	report  *ultracloud.Report
	log     *slog.Logger
	view    *progress
	workDir string

	mu       sync.Mutex
	cluster  *cluster.Cluster
	machines map[string]*vm.Machine
	kept     map[*vm.Machine]bool
	closers  []func()
	// secrets are the nodes' enrolment secrets (PhoneHome), handed to
	// their machines by Boot.
	secrets map[string]string
}

// Execute runs fn on the scaffold and returns the lane's report.
//
// Work dir: cfg.WorkDir, or a temporary directory removed after the run
// (then the report's files are gone too: pass a WorkDir to keep them). The
// run owns WorkDir/nodes, WorkDir/state and WorkDir/report and empties them
// first. The error is non-nil only when the lane could not run at all.
func Execute(ctx context.Context, cfg ultracloud.RunConfig, spec Spec, fn LaneFunc) (*ultracloud.Report, error) {
	if spec.Name == "" {
		return nil, fmt.Errorf("%w: Spec.Name is empty", ultracloud.ErrInvalid)
	}
	r := &Run{cfg: cfg, spec: spec, machines: map[string]*vm.Machine{}, kept: map[*vm.Machine]bool{}, secrets: map[string]string{}}
	switch {
	case spec.Topo != nil:
		r.topo = spec.Topo.Clone()
	case spec.Topology != "":
		t, err := ultracloud.LookupTopology(spec.Topology)
		if err != nil {
			return nil, err
		}
		r.topo = t
	}
	if err := r.prepareWorkDir(); err != nil {
		return nil, err
	}
	r.report = ultracloud.NewReport(spec.Name, cfg.Host)
	r.report.Topology = r.topo.Name
	r.log = cfg.Log().With("lane", spec.Name, "run", r.report.RunID)
	var names []string
	for _, n := range r.topo.Nodes {
		names = append(names, n.Name)
	}
	r.view = newProgress(cfg.Progress, names, r.log)

	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("lane %s panicked: %v", spec.Name, p)
			}
		}()
		return fn(ctx, r)
	}()
	r.close()
	r.view.close()
	r.report.Finish(err)
	if werr := r.writeReport(); werr != nil {
		return r.report, werr
	}
	if cfg.WorkDir == "" && !cfg.KeepVMs {
		os.RemoveAll(r.workDir)
	}
	return r.report, nil
}

func (r *Run) prepareWorkDir() error {
	if r.cfg.WorkDir == "" {
		d, err := os.MkdirTemp("", "ultracloud-"+r.spec.Name+"-")
		if err != nil {
			return err
		}
		r.workDir = d
		return nil
	}
	abs, err := filepath.Abs(r.cfg.WorkDir)
	if err != nil {
		return err
	}
	r.workDir = abs
	for _, d := range runOwned {
		if err := os.RemoveAll(filepath.Join(abs, d)); err != nil {
			return fmt.Errorf("work dir %s: reset %s: %w", abs, d, err)
		}
	}
	return os.MkdirAll(abs, 0o755)
}

// ID is the run id: servers and guests of this run carry it.
func (r *Run) ID() string { return r.report.RunID }

// Host is the preflight verdict the run uses.
func (r *Run) Host() ultracloud.HostEnv { return r.cfg.Host }

// Config is the caller's run config.
func (r *Run) Config() ultracloud.RunConfig { return r.cfg }

// Log is the run's logger (lane and run id attached).
func (r *Run) Log() *slog.Logger { return r.log }

// Topology is the lane's topology (zero when it boots none).
func (r *Run) Topology() ultracloud.Topology { return r.topo }

// WorkDir is the run's work dir (absolute).
func (r *Run) WorkDir() string { return r.workDir }

// Dir returns (and creates) WorkDir/elem…; "state" and "nodes" below it
// belong to this run only.
func (r *Run) Dir(elem ...string) (string, error) {
	d := filepath.Join(append([]string{r.workDir}, elem...)...)
	return d, os.MkdirAll(d, 0o755)
}

// Scaled is d for KVM, three times d under TCG: the one place lane
// timeouts follow the accelerator.
func (r *Run) Scaled(d time.Duration) time.Duration {
	if r.cfg.Host.Accelerator == ultracloud.AccelTCG {
		return 3 * d
	}
	return d
}

// Status shows what node is doing now in the live view.
func (r *Run) Status(node, what string) { r.view.set(node, what) }

// Say prints a lasting progress line for node (every output mode).
func (r *Run) Say(node, line string) { r.view.line(node, line) }

// Artifact records a lane-level artifact.
func (r *Run) Artifact(name, path string) { r.report.AddArtifact(name, path) }

// Event records a point event (a fault injected, its detection, a
// recovery) for the report and the timeline.
func (r *Run) Event(node, name, detail string) {
	r.report.AddEvent(ultracloud.Event{At: time.Now(), Node: node, Name: name, Detail: detail})
	r.log.Info("event", "node", node, "event", name, "detail", detail)
}

// Record records a step whose boundaries the caller knows (e.g. a server
// event's time ends it, so consecutive phases neither overlap nor leave
// gaps). A node's console is attached when the run booted it.
func (r *Run) Record(node, name string, start, end time.Time, err error, artifacts ...ultracloud.Artifact) {
	s := ultracloud.Step{Name: name, Node: node, Started: start, Finished: end, Status: ultracloud.StatusPass}
	if err != nil {
		s.Status, s.Reason = ultracloud.StatusFail, err.Error()
	}
	if m := r.Machine(node); m != nil {
		artifacts = append([]ultracloud.Artifact{{Name: node + " console", Path: m.Console().LogPath()}}, artifacts...)
	}
	s.Artifacts = artifacts
	r.report.AddStep(s)
}

// Skip records a step that did not run, with the reason: the lane is then
// incomplete, never passed.
func (r *Run) Skip(node, name, reason string) {
	now := time.Now()
	r.report.AddStep(ultracloud.Step{Name: name, Node: node, Started: now, Finished: now, Status: ultracloud.StatusSkip, Reason: reason})
}

// Include adds a member lane's steps (named member/step), events and
// artifacts to this run's report, as they are: an aggregate's report shows
// its members' work.
func (r *Run) Include(member string, sub *ultracloud.Report) {
	for _, st := range sub.Steps {
		st.Name = member + "/" + st.Name
		r.report.AddStep(st)
	}
	for _, e := range sub.Events {
		e.Name = member + "/" + e.Name
		r.report.AddEvent(e)
	}
	for _, a := range sub.Artifacts {
		r.report.AddArtifact(member+"/"+a.Name, a.Path)
	}
}

// Step runs fn as the step name on node ("" for the lane) and records it;
// it returns fn's error.
func (r *Run) Step(ctx context.Context, node, name string, fn func(context.Context) error) error {
	start := time.Now()
	if node != "" {
		r.Status(node, name)
	}
	err := fn(ctx)
	r.Record(node, name, start, time.Now(), err)
	return err
}

// Wait is a step that waits for c to hold: retried every second for at
// most timeout (Scaled by the caller as needed), failing at once when c
// fails permanently or a machine it runs on dies (checks.Eventually).
func (r *Run) Wait(ctx context.Context, node, name string, c checks.Check, timeout time.Duration) error {
	return r.Step(ctx, node, name, func(ctx context.Context) error {
		return checks.Eventually(c, time.Second, timeout).Run(ctx)
	})
}

// Fixture builds (once per run) the fixture guest.
func (r *Run) Fixture(ctx context.Context) (*fixture.Artifacts, error) {
	c, err := r.machinesOf(ctx)
	if err != nil {
		return nil, err
	}
	return c.Fixture(ctx)
}

// Switch returns the run's switch for a VLAN network of the topology,
// started on first use and closed when the run ends.
func (r *Run) Switch(network string) (*vm.Switch, error) {
	c, err := r.machinesOf(context.Background())
	if err != nil {
		return nil, err
	}
	return c.Switch(network)
}

// machinesOf returns the run's cluster: the topology's machines and
// switches (package cluster), created on first use, booting no node yet.
func (r *Run) machinesOf(ctx context.Context) (*cluster.Cluster, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cluster != nil {
		return r.cluster, nil
	}
	opts := []cluster.Option{cluster.WithNodes(), cluster.WithDir(filepath.Join(r.workDir, "nodes")),
		cluster.WithLogger(r.log), cluster.WithFixture(r.spec.Fixture), cluster.WithEvents(func(e ultracloud.Event) {
			if e.Name != "boot" {
				r.report.AddEvent(e)
			}
		})}
	if r.spec.SSH {
		keys, err := cluster.LoadKeys(filepath.Join(r.workDir, "state", "ssh"))
		if err != nil {
			return nil, err
		}
		opts = append(opts, cluster.WithSSH(keys))
	}
	if r.spec.Persist {
		opts = append(opts, cluster.WithPersist())
	}
	c, err := cluster.Start(ctx, r.topo, r.cfg.Host, opts...)
	if err != nil {
		return nil, err
	}
	r.cluster = c
	return c, nil
}

// Cluster is the run's running topology (package cluster): its fault API
// (Kill, Restart, Pause, Partition, …) records every fault as an event of
// the report.
func (r *Run) Cluster(ctx context.Context) (*cluster.Cluster, error) { return r.machinesOf(ctx) }

// BootOption adjusts a node's machine beyond what its topology says: what
// is the lane's (kernel command line, forwards to host services, boot
// media), never its size.
type BootOption func(*vm.Config)

// WithCmdline appends to the kernel command line of a direct-kernel boot.
func WithCmdline(args ...string) BootOption {
	return func(c *vm.Config) { c.Cmdline = strings.TrimSpace(c.Cmdline + " " + strings.Join(args, " ")) }
}

// WithGuestFwd adds forwards from the guest to host services on the NIC
// of the user network (the uplink).
func WithGuestFwd(fwd ...vm.GuestFwd) BootOption {
	return func(c *vm.Config) {
		for i := range c.NICs {
			if c.NICs[i].User {
				c.NICs[i].GuestFwd = append(c.NICs[i].GuestFwd, fwd...)
				return
			}
		}
	}
}

// WithMachine adjusts the machine config directly (boot media, firmware
// actions, boot order).
func WithMachine(f func(*vm.Config)) BootOption { return BootOption(f) }

// Boot starts node's machine through the run's cluster (package cluster)
// as the topology says (vm.FromNode: vCPUs, memory, disks, NICs; VLANs on
// the run's switches). A direct-kernel node without its own kernel boots
// the fixture guest with its hostname, its components and static
// addresses (Cluster.Address). The node's enrolment secret (PhoneHome)
// goes in as an SMBIOS OEM string. The machine lives in
// WorkDir/nodes/<node>; its console and QEMU command line are artifacts;
// it is stopped when the run ends unless the run keeps VMs or the lane
// calls Keep.
func (r *Run) Boot(ctx context.Context, node string, opts ...BootOption) (*vm.Machine, error) {
	if _, ok := r.topo.Node(node); !ok {
		var names []string
		for _, n := range r.topo.Nodes {
			names = append(names, n.Name)
		}
		return nil, fmt.Errorf("%w: topology %q has no node %q (nodes: %s)", ultracloud.ErrInvalid, r.topo.Name, node, strings.Join(names, ", "))
	}
	c, err := r.machinesOf(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	sec, hasSecret := r.secrets[node]
	r.mu.Unlock()
	r.Status(node, "booting")
	m, err := c.Boot(ctx, node, func(cfg *vm.Config) {
		if hasSecret {
			cfg.OEMStrings = append(cfg.OEMStrings, "ultracloud.enrol-secret="+sec)
		}
		for _, o := range opts {
			o(cfg)
		}
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.machines[node] = m
	r.mu.Unlock()
	r.Artifact(node+" console", m.Console().LogPath())
	r.Artifact(node+" qemu command line", filepath.Join(m.Dir(), "qemu-cmdline"))
	return m, nil
}

// Machine returns the machine the run booted for node (nil if none).
func (r *Run) Machine(node string) *vm.Machine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.machines[node]
}

// Keep leaves m running when the run ends; the caller then owns it.
func (r *Run) Keep(m *vm.Machine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kept[m] = true
}

// Defer runs f when the run ends, before its machines stop (servers the
// lane started, …), last deferred first.
func (r *Run) Defer(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closers = append(r.closers, f)
}

func (r *Run) close() {
	r.mu.Lock()
	closers := slices.Clone(r.closers)
	c := r.cluster
	for node, m := range r.machines {
		if (r.kept[m] || r.cfg.KeepVMs) && c != nil {
			c.Release(node)
		}
	}
	r.mu.Unlock()
	slices.Reverse(closers)
	if c != nil {
		c.Close() // machines first: servers the lane deferred outlive them
	}
	for _, f := range closers {
		f()
	}
}

// writeReport writes the timeline, then report.json and junit.xml (which
// list it), once.
func (r *Run) writeReport() error {
	dir := filepath.Join(r.workDir, "report")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	svg := filepath.Join(dir, "timeline.svg")
	if err := os.WriteFile(svg, []byte(TimelineSVG(r.report)), 0o644); err != nil {
		return err
	}
	r.report.AddArtifact("timeline", svg)
	jp, xp, err := r.report.WriteFiles(dir)
	if err != nil {
		return err
	}
	r.log.Info("report written", "json", jp, "junit", xp, "timeline", svg)
	return nil
}
