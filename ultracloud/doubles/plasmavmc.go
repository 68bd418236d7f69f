package doubles

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// plasmavmc's state in chainfire.
const (
	// PrefixPlasmavmcNodes holds each live plasmavmc node (under its
	// lease) with the images on its disk: where VMs can be placed.
	PrefixPlasmavmcNodes = "/plasmavmc/nodes/"
	// PrefixPlasmavmcVMs holds each VM's spec, with the node it is
	// placed on.
	PrefixPlasmavmcVMs = "/plasmavmc/vms/"
	// PrefixPlasmavmcStatus holds each running VM's status, under the
	// lease of the node running it (gone with the node).
	PrefixPlasmavmcStatus = "/plasmavmc/status/"
	// ServicesIP is the link-local address where a VM reaches the
	// platform's services (lightningstor's S3 on LightningstorPort), as cloud VMs
	// reach their metadata and storage endpoints.
	ServicesIP = "169.254.169.254"
)

// VM states of VMStatus.
const (
	VMRunning = "running"
	VMError   = "error"
)

// VMSpec is a VM as created through plasmavmc's API.
type VMSpec struct {
	// Name is 1-10 of a-z, 0-9 and - (it names the VM's prismnet port).
	Name string `json:"name"`
	// Image is an image uploaded to the workers (PUT /v1/images/NAME).
	Image string `json:"image"`
	// MemoryMiB is the VM's memory limit (default 128).
	MemoryMiB int `json:"memoryMiB,omitempty"`
	// Command is the VM's init and its arguments, a path in the image.
	Command []string `json:"command"`
	// Node, on create, asks for one worker; plasmavmc sets it to the
	// worker the VM is placed on.
	Node string `json:"node,omitempty"`
	// Avoid, on create, lists workers not to place the VM on.
	Avoid []string `json:"avoid,omitempty"`
	// Volumes are coronafs volumes the VM mounts (one VM at a time uses a
	// volume: the VM does not start while another holds it).
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// ID is set by plasmavmc: a VM created again under the same name is
	// another VM.
	ID      string    `json:"id,omitempty"`
	Created time.Time `json:"created"`
}

// VolumeMount mounts a coronafs volume at Path (absolute) in a VM.
type VolumeMount struct {
	Volume string `json:"volume"`
	Path   string `json:"path"`
}

// VMStatus is what the node running a VM reports.
type VMStatus struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	Node    string    `json:"node"`
	State   string    `json:"state"`
	IP      string    `json:"ip,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
}

// VM is a spec with the status of its current incarnation (nil while no
// node runs it: not started yet, or its node is gone).
type VM struct {
	VMSpec
	Status *VMStatus `json:"status,omitempty"`
}

// PlasmavmcNode is a live worker's registration.
type PlasmavmcNode struct {
	Node   string   `json:"node"`
	Images []string `json:"images"`
}

// PlasmavmcConfig configures RunPlasmavmc.
type PlasmavmcConfig struct {
	// Node is this worker's name.
	Node string
	// HealthAddr serves GET /health and the API.
	HealthAddr string
	// StateDir keeps images (images/NAME) and VM consoles (vms/NAME.log);
	// default /var/lib/plasmavmc (the node's disk).
	StateDir string
	// Prismnet returns the base URL of this node's prismnet API, where
	// VMs get their ports.
	Prismnet func() (string, error)
	// Storage are lightningstor's addresses (host:port) that a VM's
	// ServicesIP:LightningstorPort forwards to, the first that answers.
	Storage []string
	// TTL of the node's registration lease (default 10 s).
	TTL time.Duration
	// Launcher starts a sandbox: argv before the sandbox's flags
	// (default: this executable's "vm-init", see VMInit).
	Launcher []string
	// CgroupRoot is the cgroup v2 hierarchy (default /sys/fs/cgroup).
	CgroupRoot string
}

// RunPlasmavmc runs plasmavmc's double on a worker until ctx ends.
//
// On the fixture a VM is a sandbox, not a nested QEMU (too slow under
// TCG): a process in its own mount, PID, UTS and IPC namespaces, in its
// prismnet port's network namespace, under a cgroup memory limit, its
// root filesystem unpacked from the VM image file on the node's disk into
// a RAM disk (as a VM boots from an initrd). Real UltraCloud images run
// real VMs behind the same API.
//
// The API on HealthAddr, on any worker: PUT /v1/images/{name} stores an
// image on this node's disk; GET /v1/images lists them; POST /v1/vms
// (a VMSpec) places a VM on the live worker with the image and the fewest
// VMs (201, the spec); GET /v1/vms and /v1/vms/{name} answer VMs with the
// status of the node running them; DELETE /v1/vms/{name} deletes one (its
// node stops it). Specs live in chainfire; each worker runs what is
// placed on it and reports status under its lease, so a dead worker's VMs
// show no status until they are deleted and created again.
func RunPlasmavmc(ctx context.Context, cfg PlasmavmcConfig, cli *clientv3.Client, log *slog.Logger) error {
	p := &plasmavmc{cfg: cfg, cli: cli, log: log, vms: map[string]*sandbox{}}
	p.cfg.StateDir = cmp.Or(cfg.StateDir, "/var/lib/plasmavmc")
	p.cfg.TTL = cmp.Or(cfg.TTL, 10*time.Second)
	p.cfg.CgroupRoot = cmp.Or(cfg.CgroupRoot, "/sys/fs/cgroup")
	if len(p.cfg.Launcher) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		p.cfg.Launcher = []string{exe, "vm-init"}
	}
	if p.cfg.Prismnet == nil {
		return errors.New("plasmavmc: no prismnet (PlasmavmcConfig.Prismnet)")
	}
	for _, d := range []string{"images", "vms"} {
		if err := os.MkdirAll(filepath.Join(p.cfg.StateDir, d), 0o755); err != nil {
			return fmt.Errorf("plasmavmc: %w", err)
		}
	}
	p.lease = &lease{}
	err := p.lease.keep(ctx, cli, p.cfg.TTL, "plasmavmc", log, func(ctx context.Context, _ clientv3.LeaseID) error {
		if err := p.register(ctx); err != nil {
			return err
		}
		// The VMs' statuses went with the old lease.
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, sb := range p.vms {
			if !sb.exited() {
				p.status(ctx, VMStatus{Name: sb.spec.Name, ID: sb.spec.ID, Node: p.cfg.Node, State: VMRunning, IP: sb.port.IP, PID: sb.cmd.Process.Pid, Started: sb.started})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("plasmavmc", cli))
	mux.HandleFunc("PUT /v1/images/{name}", p.putImage)
	mux.HandleFunc("GET /v1/images", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(p.images())
	})
	mux.HandleFunc("GET /v1/images/{name}", p.getImage)
	mux.HandleFunc("POST /v1/vms", p.create)
	listAndGet(mux, "/v1/vms", cli, ListVMs, func(vm VM) string { return vm.Name }, "plasmavmc", "VM")
	mux.HandleFunc("DELETE /v1/vms/{name}", deleteKey(cli, PrefixPlasmavmcVMs, "plasmavmc", "VM"))
	stop, err := serve(cfg.HealthAddr, mux, log)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("plasmavmc up", "node", cfg.Node, "images", p.images())
	p.reconcileLoop(ctx)
	// Shutting down: the VMs go with their host.
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, sb := range p.vms {
		p.stop(context.WithoutCancel(ctx), sb)
		delete(p.vms, name)
	}
	return nil
}

type plasmavmc struct {
	cfg   PlasmavmcConfig
	cli   *clientv3.Client
	log   *slog.Logger
	lease *lease

	mu  sync.Mutex
	vms map[string]*sandbox
	// unreleased are volume attachments (volume → VM ID) a stopped VM
	// could not release (chainfire unreachable for a moment); every
	// reconcile tries again, or the volume would stay held for good.
	unreleased map[string]string
}

// images lists the images on this node's disk.
func (p *plasmavmc) images() []string {
	ents, _ := os.ReadDir(filepath.Join(p.cfg.StateDir, "images"))
	out := []string{}
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func (p *plasmavmc) register(ctx context.Context) error {
	rec, _ := json.Marshal(PlasmavmcNode{Node: p.cfg.Node, Images: p.images()})
	if _, err := p.cli.Put(ctx, PrefixPlasmavmcNodes+p.cfg.Node, string(rec), clientv3.WithLease(p.lease.ID())); err != nil {
		return fmt.Errorf("plasmavmc: register: %w", err)
	}
	return nil
}

// putImage stores an image on this node's disk (written aside, then
// renamed: a VM never sees half an image) and answers its SHA-256.
func (p *plasmavmc) putImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !portName.MatchString(name) {
		http.Error(w, fmt.Sprintf("plasmavmc: image name %q: 1-10 of a-z, 0-9 and -", name), http.StatusBadRequest)
		return
	}
	dir := filepath.Join(p.cfg.StateDir, "images")
	f, err := os.CreateTemp(dir, ".upload-")
	if err != nil {
		http.Error(w, "plasmavmc: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		http.Error(w, "plasmavmc: image "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	if err := p.register(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	p.log.Info("image stored", "image", name, "bytes", n)
	json.NewEncoder(w).Encode(ImageInfo{Image: name, Node: p.cfg.Node, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// ImageInfo is what plasmavmc answers about an image on a worker's disk.
type ImageInfo struct {
	Image  string `json:"image"`
	Node   string `json:"node"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// getImage answers an image's size and SHA-256 (404 when it is not on
// this node's disk), so a client can skip uploading what is there.
func (p *plasmavmc) getImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !portName.MatchString(name) {
		http.Error(w, fmt.Sprintf("plasmavmc: image name %q: 1-10 of a-z, 0-9 and -", name), http.StatusBadRequest)
		return
	}
	f, err := os.Open(filepath.Join(p.cfg.StateDir, "images", name))
	if err != nil {
		http.Error(w, "plasmavmc: no image "+name+" on "+p.cfg.Node, http.StatusNotFound)
		return
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		http.Error(w, "plasmavmc: image "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	json.NewEncoder(w).Encode(ImageInfo{Image: name, Node: p.cfg.Node, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// ListVMs reads every VM spec and status from chainfire, by name.
func ListVMs(ctx context.Context, cli *clientv3.Client) ([]VM, error) {
	specs, err := cli.Get(ctx, PrefixPlasmavmcVMs, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	sts, err := cli.Get(ctx, PrefixPlasmavmcStatus, clientv3.WithPrefix(), clientv3.WithRev(specs.Header.Revision))
	if err != nil {
		return nil, err
	}
	status := map[string]*VMStatus{}
	for _, kv := range sts.Kvs {
		var st VMStatus
		if json.Unmarshal(kv.Value, &st) == nil {
			status[st.Name] = &st
		}
	}
	out := []VM{}
	for _, kv := range specs.Kvs {
		var vm VM
		if json.Unmarshal(kv.Value, &vm.VMSpec) != nil {
			continue
		}
		if st := status[vm.Name]; st != nil && st.ID == vm.ID {
			vm.Status = st
		}
		out = append(out, vm)
	}
	return out, nil
}

// create places a VM: on the requested worker or the live one with the
// image and the fewest VMs, never one in Avoid.
func (p *plasmavmc) create(w http.ResponseWriter, r *http.Request) {
	var spec VMSpec
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&spec); err != nil {
		http.Error(w, "plasmavmc: want a JSON VM spec: "+err.Error(), http.StatusBadRequest)
		return
	}
	var bad []string
	if !portName.MatchString(spec.Name) {
		bad = append(bad, fmt.Sprintf("name %q: 1-10 of a-z, 0-9 and -", spec.Name))
	}
	if spec.Image == "" {
		bad = append(bad, "image: the name of an uploaded image is required")
	}
	if len(spec.Command) == 0 {
		bad = append(bad, "command: the VM's init (a path in the image) is required")
	}
	paths := map[string]bool{}
	for _, m := range spec.Volumes {
		if !volumeName.MatchString(m.Volume) {
			bad = append(bad, fmt.Sprintf("volume %q: the name of a coronafs volume", m.Volume))
		}
		if !filepath.IsAbs(m.Path) || filepath.Clean(m.Path) != m.Path || m.Path == "/" || strings.ContainsAny(m.Path, ":,") || paths[m.Path] {
			bad = append(bad, fmt.Sprintf("volume %s: path %q: a clean absolute path other than /, once per VM, without : or ,", m.Volume, m.Path))
		}
		paths[m.Path] = true
	}
	if spec.MemoryMiB < 0 || spec.MemoryMiB > 4096 {
		bad = append(bad, fmt.Sprintf("memoryMiB %d: 0 (default 128) to 4096", spec.MemoryMiB))
	}
	if len(bad) > 0 {
		http.Error(w, "plasmavmc: "+strings.Join(bad, "; "), http.StatusBadRequest)
		return
	}
	spec.MemoryMiB = cmp.Or(spec.MemoryMiB, 128)
	ctx := r.Context()
	nodes, err := p.cli.Get(ctx, PrefixPlasmavmcNodes, clientv3.WithPrefix())
	if err != nil {
		http.Error(w, "plasmavmc: chainfire: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	vms, err := ListVMs(ctx, p.cli)
	if err != nil {
		http.Error(w, "plasmavmc: chainfire: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	load := map[string]int{}
	for _, vm := range vms {
		load[vm.Node]++
	}
	var live, fit []string
	for _, kv := range nodes.Kvs {
		var n PlasmavmcNode
		if json.Unmarshal(kv.Value, &n) != nil {
			continue
		}
		live = append(live, n.Node)
		if slices.Contains(n.Images, spec.Image) && !slices.Contains(spec.Avoid, n.Node) && (spec.Node == "" || spec.Node == n.Node) {
			fit = append(fit, n.Node)
		}
	}
	if len(fit) == 0 {
		http.Error(w, fmt.Sprintf("plasmavmc: no live worker fits VM %s (image %q, node %q, avoiding %v); live workers: %v", spec.Name, spec.Image, spec.Node, spec.Avoid, live), http.StatusConflict)
		return
	}
	slices.SortFunc(fit, func(a, b string) int { return cmp.Or(cmp.Compare(load[a], load[b]), strings.Compare(a, b)) })
	spec.Node, spec.Avoid = fit[0], nil
	raw := make([]byte, 8)
	rand.Read(raw)
	spec.ID, spec.Created = hex.EncodeToString(raw), time.Now().UTC()
	rec, _ := json.Marshal(spec)
	key := PrefixPlasmavmcVMs + spec.Name
	t, err := p.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(rec))).Commit()
	if err != nil {
		http.Error(w, "plasmavmc: chainfire: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !t.Succeeded {
		http.Error(w, "plasmavmc: VM "+spec.Name+" exists; delete it first", http.StatusConflict)
		return
	}
	p.log.Info("VM placed", "vm", spec.Name, "node", spec.Node, "id", spec.ID)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(spec)
}

// reconcileLoop runs what is placed on this node and stops what is not,
// on every change of the specs and, as a resync, every ten seconds (a
// chainfire read each: the watch is what makes it quick).
func (p *plasmavmc) reconcileLoop(ctx context.Context) {
	wch := p.cli.Watch(clientv3.WithRequireLeader(ctx), PrefixPlasmavmcVMs, clientv3.WithPrefix())
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		p.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case _, ok := <-wch:
			if !ok {
				wch = p.cli.Watch(clientv3.WithRequireLeader(ctx), PrefixPlasmavmcVMs, clientv3.WithPrefix())
			}
		case <-tick.C:
		}
	}
}

func (p *plasmavmc) reconcile(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := p.cli.Get(rctx, PrefixPlasmavmcVMs, clientv3.WithPrefix())
	if err != nil {
		return
	}
	want := map[string]VMSpec{}
	for _, kv := range resp.Kvs {
		var s VMSpec
		if json.Unmarshal(kv.Value, &s) == nil && s.Node == p.cfg.Node {
			want[s.Name] = s
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, sb := range p.vms {
		if s, ok := want[name]; !ok || s.ID != sb.spec.ID || sb.exited() {
			p.stop(rctx, sb)
			delete(p.vms, name)
		}
	}
	for vol, id := range p.unreleased {
		if err := releaseVolume(rctx, p.cli, vol, id); err == nil {
			p.log.Info("volume released (again)", "volume", vol, "vm-id", id)
			delete(p.unreleased, vol)
		}
	}
	for name, s := range want {
		if _, ok := p.vms[name]; ok {
			continue
		}
		sb, err := p.start(rctx, s)
		if err != nil {
			p.log.Error("VM start", "vm", name, "err", err)
			p.status(rctx, VMStatus{Name: name, ID: s.ID, Node: p.cfg.Node, State: VMError, Error: err.Error(), Started: time.Now().UTC()})
			continue
		}
		p.vms[name] = sb
		p.log.Info("VM running", "vm", name, "ip", sb.port.IP, "pid", sb.cmd.Process.Pid)
		p.status(rctx, VMStatus{Name: name, ID: s.ID, Node: p.cfg.Node, State: VMRunning, IP: sb.port.IP, PID: sb.cmd.Process.Pid, Started: sb.started})
	}
}

func (p *plasmavmc) status(ctx context.Context, st VMStatus) {
	rec, _ := json.Marshal(st)
	p.cli.Put(ctx, PrefixPlasmavmcStatus+st.Name, string(rec), clientv3.WithLease(p.lease.ID()))
}
