// Package cluster runs a Topology: one machine per node, one switch per
// VLAN network, static addresses from the topology's CIDRs, and a fault
// API (Kill, Restart, Pause, Resume, Partition, Heal, LinkDown, LinkUp,
// DiskErrors) whose every use is recorded as an event. Lanes and Go tests
// use it in-process (Start, StartT); the long-lived cluster of the CLI
// verbs builds on it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// ErrUnknownNode: a node the topology does not have.
var ErrUnknownNode = errors.New("unknown node")

// Option adjusts Start.
type Option func(*options)

type options struct {
	dir     string
	log     *slog.Logger
	fixture *fixture.Builder
	limit   int
	onEvent func(ultracloud.Event)
	boot    []func(node ultracloud.Node, c *vm.Config)
	nodes   []string
	keys    *Keys
	persist bool
	runDir  string
}

// WithDir keeps the machines' directories (disks, logs) under dir/<node>;
// default a temporary directory removed by Close.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithFixture sets the builder of the fixture guest that direct-kernel
// nodes without their own kernel boot.
func WithFixture(b *fixture.Builder) Option { return func(o *options) { o.fixture = b } }

// WithParallel bounds how many machines boot at once (default: as many
// as half the host's memory holds, at least 1).
func WithParallel(n int) Option { return func(o *options) { o.limit = n } }

// WithEvents receives every event (faults, boots) as it happens.
func WithEvents(f func(ultracloud.Event)) Option { return func(o *options) { o.onEvent = f } }

// WithBoot adjusts every machine's config before it starts (kernel command
// line, forwards, boot media): what is the caller's, never its size.
func WithBoot(f func(node ultracloud.Node, c *vm.Config)) Option {
	return func(o *options) { o.boot = append(o.boot, f) }
}

// WithNodes starts only these nodes (default: every node); the others can
// be booted later with Boot.
func WithNodes(names ...string) Option {
	return func(o *options) { o.nodes = append([]string{}, names...) } // never nil: none is none
}

// WithSSH hands every node the cluster's SSH keys (host key and root's
// authorized key, as SMBIOS OEM strings) and forwards a 127.0.0.1 port to
// guest port 22 on its user-mode uplink: Cluster.SSH logs in. Nodes
// without a user-mode NIC are not reachable over SSH.
func WithSSH(k *Keys) Option { return func(o *options) { o.keys = k } }

// WithPersist mounts each fixture node's first disk on /var/lib (formatted
// on first boot), so what the guest keeps there survives Restart and a
// stop and start of the cluster.
func WithPersist() Option { return func(o *options) { o.persist = true } }

// WithRunDir keeps the machines' and switches' unix sockets under dir
// (short: socket paths are at most 107 bytes) instead of fresh temporary
// directories, so whoever owns dir can always clean them up.
func WithRunDir(dir string) Option { return func(o *options) { o.runDir = dir } }

// Cluster is a running topology.
type Cluster struct {
	topo    ultracloud.Topology
	host    ultracloud.HostEnv
	o       options
	dir     string
	tempDir bool

	mu       sync.Mutex
	switches map[string]*vm.Switch
	ports    map[string]string // "network/node" → socket
	machines map[string]*vm.Machine
	booted   map[string]time.Time
	faults   map[string]map[string]*vm.DiskFault // node → disk → fault
	events   []ultracloud.Event
	arts     *fixture.Artifacts
	closed   bool
}

// Start boots the topology's nodes in parallel and returns once every
// machine runs (not once its guest is up: wait on checks for that). When
// the topology's vCPUs outnumber the host's cores under TCG, boots are
// staggered: one machine per core boots at a time, the next starts when a
// booting guest's shell greets (or after StaggerTimeout), since there
// booting is CPU-bound and more at once only adds contention (measured:
// 6 × 2-vCPU nodes on 2 cores reach their shells in ~28 s staggered,
// 26–37 s at once). On an error every machine started so far is stopped.
func Start(ctx context.Context, topo ultracloud.Topology, host ultracloud.HostEnv, opts ...Option) (*Cluster, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{topo: topo.Clone(), host: host, switches: map[string]*vm.Switch{}, ports: map[string]string{},
		machines: map[string]*vm.Machine{}, booted: map[string]time.Time{}, faults: map[string]map[string]*vm.DiskFault{}}
	for _, opt := range opts {
		opt(&c.o)
	}
	if c.o.log == nil {
		c.o.log = slog.New(slog.DiscardHandler)
	}
	c.dir = c.o.dir
	if c.dir == "" {
		d, err := os.MkdirTemp("", "ultracloud-cluster-")
		if err != nil {
			return nil, err
		}
		c.dir, c.tempDir = d, true
	}
	names := c.o.nodes
	if names == nil {
		for _, n := range c.topo.Nodes {
			names = append(names, n.Name)
		}
	}
	if err := c.boot(ctx, names); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// BootAll boots every node of the topology that is not running, as Start
// does (in parallel, staggered on an oversubscribed TCG host).
func (c *Cluster) BootAll(ctx context.Context) error {
	var names []string
	for _, n := range c.topo.Nodes {
		if m, err := c.Node(n.Name); err != nil || m.Exited() {
			names = append(names, n.Name)
		}
	}
	return c.boot(ctx, names)
}

func (c *Cluster) boot(ctx context.Context, names []string) error {
	g, gctx := errgroup.WithContext(ctx)
	limit, stagger := c.parallel(), c.stagger()
	if stagger > 0 {
		limit = min(limit, stagger)
	}
	g.SetLimit(limit)
	for _, n := range names {
		g.Go(func() error {
			m, err := c.Boot(gctx, n)
			if err != nil || stagger == 0 || m.Shell() == nil {
				return err
			}
			// Oversubscribed under TCG: hold the slot until the guest's
			// shell greets (bounded), so the booting machines each get a core.
			wctx, cancel := context.WithTimeout(gctx, StaggerTimeout)
			m.Shell().Connected(wctx) // a guest that never greets is the checks' business
			cancel()
			return nil
		})
	}
	return g.Wait()
}

// parallel is the boot limit: the option, else what half the host's
// memory holds.
func (c *Cluster) parallel() int {
	if c.o.limit > 0 {
		return c.o.limit
	}
	most := 0
	for _, n := range c.topo.Nodes {
		most = max(most, n.MemoryMiB)
	}
	if most == 0 || c.host.MemoryMiB == 0 {
		return len(c.topo.Nodes)
	}
	return max(1, min(len(c.topo.Nodes), c.host.MemoryMiB/2/most))
}

// StaggerTimeout bounds how long a booting machine holds its slot when
// boots are staggered (see Start).
const StaggerTimeout = 2 * time.Minute

// stagger is how many machines boot at once when the topology's vCPUs
// outnumber the host's cores under TCG: one per core (0: no staggering).
// Booting is CPU-bound there, so more at once only adds contention.
func (c *Cluster) stagger() int {
	if c.host.Accelerator != ultracloud.AccelTCG || !c.oversubscribed() {
		return 0
	}
	return max(1, c.host.CPUs)
}

// oversubscribed: the topology's vCPUs outnumber the host's cores, so
// machines run their vCPUs on one host thread each under TCG (see
// vm.Config.SingleThreadTCG).
func (c *Cluster) oversubscribed() bool {
	vcpus := 0
	for _, n := range c.topo.Nodes {
		vcpus += max(n.VCPUs, 1)
	}
	return c.host.CPUs > 0 && vcpus > c.host.CPUs
}

// StartT starts the cluster for a test and stops it in t.Cleanup; on a
// failure the test ends with the error.
func StartT(t testing.TB, topo ultracloud.Topology, host ultracloud.HostEnv, opts ...Option) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), topo, host, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Topology is the running topology.
func (c *Cluster) Topology() ultracloud.Topology { return c.topo.Clone() }

// Node returns node's machine, or ErrUnknownNode listing the nodes.
func (c *Cluster) Node(name string) (*vm.Machine, error) {
	if _, ok := c.topo.Node(name); !ok {
		return nil, c.unknown(name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.machines[name]
	if m == nil {
		return nil, fmt.Errorf("node %s is not running", name)
	}
	return m, nil
}

func (c *Cluster) unknown(name string) error {
	var names []string
	for _, n := range c.topo.Nodes {
		names = append(names, n.Name)
	}
	return fmt.Errorf("%w %q; the nodes are %s", ErrUnknownNode, name, strings.Join(names, ", "))
}

// BootedAt is when node's machine was last started (zero: never).
func (c *Cluster) BootedAt(node string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.booted[node]
}

// Events returns the events so far.
func (c *Cluster) Events() []ultracloud.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func (c *Cluster) event(node, name, detail string) {
	e := ultracloud.Event{At: time.Now(), Node: node, Name: name, Detail: detail}
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	c.o.log.Info("cluster event", "node", node, "event", name, "detail", detail)
	if c.o.onEvent != nil {
		c.o.onEvent(e)
	}
}

// Address is node's static address on a network of the topology: the
// network's first address plus the node's position (1-based); the user
// network is QEMU's 10.0.2.15.
func (c *Cluster) Address(node, network string) (netip.Addr, error) {
	i := slices.IndexFunc(c.topo.Nodes, func(n ultracloud.Node) bool { return n.Name == node })
	if i < 0 {
		return netip.Addr{}, c.unknown(node)
	}
	for _, nw := range c.topo.Networks {
		if nw.Name != network {
			continue
		}
		if nw.Kind == ultracloud.NetworkUser {
			return netip.MustParseAddr("10.0.2.15"), nil
		}
		p, err := netip.ParsePrefix(nw.CIDR)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("network %s has no CIDR for static addresses: %w", network, err)
		}
		a := p.Masked().Addr()
		for range i + 1 {
			a = a.Next()
		}
		if !p.Contains(a) {
			return netip.Addr{}, fmt.Errorf("network %s (%s) has no room for node %d", network, nw.CIDR, i+1)
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("topology %s has no network %q", c.topo.Name, network)
}

// Switch returns the switch of a VLAN network, started on first use.
func (c *Cluster) Switch(network string) (*vm.Switch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sw, ok := c.switches[network]; ok {
		return sw, nil
	}
	dir := ""
	if c.o.runDir != "" {
		dir = filepath.Join(c.o.runDir, "sw-"+network)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	sw, err := vm.NewSwitch(dir, c.o.log.With("switch", network))
	if err != nil {
		return nil, err
	}
	c.switches[network] = sw
	return sw, nil
}

// port returns (creating once) node's port on network: a restarted
// machine reconnects to the same port.
func (c *Cluster) port(network, node string) (string, error) {
	sw, err := c.Switch(network)
	if err != nil {
		return "", err
	}
	key := network + "/" + node
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.ports[key]; ok {
		return p, nil
	}
	p, err := sw.Port(node)
	if err != nil {
		return "", err
	}
	c.ports[key] = p
	return p, nil
}

// Boot starts node's machine as its topology says (vm.FromNode), in
// Dir/<node>; disks already there are kept (Restart boots the same disks).
// A direct-kernel node without its own kernel boots the fixture guest with
// its hostname, its components and static addresses on every network.
func (c *Cluster) Boot(ctx context.Context, node string, mods ...func(*vm.Config)) (*vm.Machine, error) {
	n, ok := c.topo.Node(node)
	if !ok {
		return nil, c.unknown(node)
	}
	cfg, err := vm.FromNode(c.topo, *n, c.host, c.port)
	if err != nil {
		return nil, err
	}
	if cfg.Firmware == ultracloud.FirmwareDirect && cfg.Kernel == "" {
		arts, err := c.Fixture(ctx)
		if err != nil {
			return nil, err
		}
		cfg.Kernel, cfg.Initrd = arts.Vmlinux, arts.Initrd
		args := []string{"console=ttyS0", "quiet", "ultracloud.hostname=" + n.Name}
		if len(n.Components) > 0 {
			args = append(args, "ultracloud.components="+strings.Join(n.Components, ","))
		}
		for _, nic := range n.NICs {
			a, err := c.Address(n.Name, nic.Network)
			if err != nil {
				continue
			}
			spec := fmt.Sprintf("ultracloud.if=%s=%s/24", nic.MAC, a)
			if nw := c.network(nic.Network); nw.Kind == ultracloud.NetworkUser {
				spec += "@10.0.2.2"
			} else if p, err := netip.ParsePrefix(nw.CIDR); err == nil {
				spec = fmt.Sprintf("ultracloud.if=%s=%s/%d", nic.MAC, a, p.Bits())
			}
			args = append(args, spec)
		}
		if members := c.chainfireMembers(); members != "" {
			args = append(args, "ultracloud.chainfire="+members)
		}
		if c.o.persist && len(cfg.Disks) > 0 {
			if err := c.journaled(ctx, node, &cfg.Disks[0]); err != nil {
				return nil, err
			}
			args = append(args, "ultracloud.persist="+cfg.Disks[0].ID)
		}
		cfg.Cmdline = strings.TrimSpace(strings.Join(args, " ") + " " + cfg.Cmdline)
	}
	cfg.SingleThreadTCG = c.oversubscribed()
	cfg.Dir = filepath.Join(c.dir, node)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	cfg.Logger = c.o.log.With("node", node)
	if c.o.runDir != "" {
		cfg.SocketDir = filepath.Join(c.o.runDir, node)
	}
	if c.o.keys != nil {
		creds, err := c.o.keys.Credentials(node)
		if err != nil {
			return nil, err
		}
		cfg.OEMStrings = append(cfg.OEMStrings, creds...)
		for i := range cfg.NICs {
			if cfg.NICs[i].User {
				cfg.NICs[i].HostFwd = append(cfg.NICs[i].HostFwd, vm.HostFwd{HostAddr: "127.0.0.1:0", GuestPort: 22})
				break
			}
		}
	}
	c.mu.Lock()
	for i := range cfg.Disks {
		cfg.Disks[i].Fault = c.faults[node][cfg.Disks[i].ID]
	}
	c.mu.Unlock()
	for _, f := range c.o.boot {
		f(*n, &cfg)
	}
	for _, f := range mods {
		f(&cfg)
	}
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	c.mu.Lock()
	c.machines[node] = m
	c.booted[node] = time.Now()
	c.mu.Unlock()
	c.event(node, "boot", fmt.Sprintf("%d vCPU, %d MiB, accelerator %s", cfg.VCPUs, cfg.MemoryMiB, cfg.Host.Accelerator))
	return m, nil
}

// journaled creates node's persistent disk, when it does not exist yet,
// as ext4 with a journal (host mkfs.ext4): a node killed mid-write (the
// Kill fault) must come back with a consistent filesystem, which an
// unjournaled ext2 made in the guest does not guarantee (measured: after a
// SIGKILL, bbolt's pages were reused and etcd panicked on restart).
func (c *Cluster) journaled(ctx context.Context, node string, d *vm.DiskConfig) error {
	if d.Format != vm.FormatRaw && d.Format != "" {
		return nil
	}
	if d.Path == "" {
		d.Path = filepath.Join(c.dir, node, d.ID+".raw")
	}
	if _, err := os.Stat(d.Path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
		return err
	}
	if err := vm.CreateDisk(ctx, d.Path, vm.FormatRaw, d.Size); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "ultracloud-state", "-N", "16384",
		"-E", "lazy_itable_init=1,lazy_journal_init=1", d.Path).CombinedOutput()
	if err != nil {
		os.Remove(d.Path)
		return fmt.Errorf("%s: mkfs.ext4 %s: %v: %s (install e2fsprogs)", node, d.Path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// chainfireMembers lists the nodes running chainfire with their address
// on the first VLAN network ("node01=10.100.0.1,…"): the fixture doubles'
// etcd members (see package doubles); "" when there are none.
func (c *Cluster) chainfireMembers() string {
	var vlan string
	for _, nw := range c.topo.Networks {
		if nw.Kind == ultracloud.NetworkVLAN {
			vlan = nw.Name
			break
		}
	}
	var out []string
	for _, n := range c.topo.Nodes {
		if !slices.Contains(n.Components, "chainfire") || vlan == "" {
			continue
		}
		if a, err := c.Address(n.Name, vlan); err == nil {
			out = append(out, n.Name+"="+a.String())
		}
	}
	return strings.Join(out, ",")
}

func (c *Cluster) network(name string) ultracloud.Network {
	for _, nw := range c.topo.Networks {
		if nw.Name == name {
			return nw
		}
	}
	return ultracloud.Network{}
}

// Fixture builds (once per cluster) the fixture guest that direct-kernel
// nodes without their own kernel boot.
func (c *Cluster) Fixture(ctx context.Context) (*fixture.Artifacts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.arts != nil {
		return c.arts, nil
	}
	fb := c.o.fixture
	if fb == nil {
		var err error
		if fb, err = fixture.NewBuilder(fixture.WithLogger(c.o.log)); err != nil {
			return nil, err
		}
	}
	arts, err := fb.Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	c.arts = arts
	return arts, nil
}

// Release hands node's machine to the caller: Close leaves it running
// (its VLAN links end with the cluster's switches).
func (c *Cluster) Release(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.machines, node)
}

// Close stops every machine and switch; a temporary Dir is removed.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ms := c.machines
	sws := c.switches
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); m.Close() }()
	}
	wg.Wait()
	for _, sw := range sws {
		sw.Close()
	}
	if c.tempDir {
		os.RemoveAll(c.dir)
	}
	return nil
}
