package doubles

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// coronafs's state in chainfire and its NBD port.
const (
	// PrefixCoronafsVolumes holds each Volume.
	PrefixCoronafsVolumes = "/coronafs/volumes/"
	// PrefixCoronafsAttachments holds the VolumeAttachment of each volume
	// in use, under the lease of the worker using it: a dead worker's
	// attachments go with it.
	PrefixCoronafsAttachments = "/coronafs/attachments/"
	// CoronafsNBDPort is where coronafs exports its volumes over NBD.
	CoronafsNBDPort = 10809
	// VolumeFS is the filesystem a new volume carries.
	VolumeFS = "vfat"
)

// ErrVolumeAttached is wrapped when a volume is in use by another VM.
var ErrVolumeAttached = errors.New("volume attached elsewhere")

// Volume is a network block volume: a file on the disk of the coronafs
// node that created it, exported over NBD at Export under its name.
type Volume struct {
	Name    string    `json:"name"`
	SizeMiB int       `json:"sizeMiB"`
	Node    string    `json:"node"`
	Export  string    `json:"export"`
	FS      string    `json:"fs"`
	Created time.Time `json:"created"`
	// Attachment is set in API answers while a VM uses the volume.
	Attachment *VolumeAttachment `json:"attachment,omitempty"`
}

// VolumeAttachment records which VM uses a volume, on which worker and
// through which kernel device.
type VolumeAttachment struct {
	Volume string    `json:"volume"`
	VM     string    `json:"vm"`
	VMID   string    `json:"vmID"`
	Node   string    `json:"node"`
	Since  time.Time `json:"since"`
	Device string    `json:"device,omitempty"`
}

// CoronafsConfig configures RunCoronafs.
type CoronafsConfig struct {
	// Node is this node; HealthAddr serves the API.
	Node, HealthAddr string
	// Addr is this node's cluster address, where workers reach the exports.
	Addr string
	// NBDListen is the NBD server's address (default ":10809").
	NBDListen string
	// StateDir keeps the volume files, volumes/NAME.img (default
	// /var/lib/coronafs, the node's disk).
	StateDir string
}

var volumeName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// RunCoronafs runs coronafs's double until ctx ends. POST
// /v1/volumes/{name} {"sizeMiB": N} (default 64, at most 1024) creates a
// volume on this node's disk, formatted (FAT32) so a VM can mount it;
// GET /v1/volumes and /v1/volumes/{name} answer Volumes with their
// attachment; DELETE /v1/volumes/{name} deletes a volume no VM uses (409
// otherwise). Volumes are exported over NBD on NBDListen; plasmavmc
// attaches one to a VM through the worker's kernel NBD client and records
// the attachment in chainfire, so one VM at a time uses a volume.
func RunCoronafs(ctx context.Context, cfg CoronafsConfig, cli *clientv3.Client, log *slog.Logger) error {
	cfg.StateDir = cmp.Or(cfg.StateDir, "/var/lib/coronafs")
	cfg.NBDListen = cmp.Or(cfg.NBDListen, fmt.Sprintf(":%d", CoronafsNBDPort))
	c := &coronafs{cfg: cfg, cli: cli, log: log, dir: filepath.Join(cfg.StateDir, "volumes")}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("coronafs: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.NBDListen)
	if err != nil {
		return fmt.Errorf("coronafs: NBD listener: %w", err)
	}
	nbd := &NBDServer{Open: c.open, List: c.list, Log: log}
	served := make(chan error, 1)
	go func() { served <- nbd.Serve(ctx, ln) }()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("coronafs", cli))
	mux.HandleFunc("POST /v1/volumes/{name}", c.create)
	listAndGet(mux, "/v1/volumes", cli, ListVolumes, func(v Volume) string { return v.Name }, "coronafs", "volume")
	mux.HandleFunc("DELETE /v1/volumes/{name}", c.delete)
	stop, err := serve(cfg.HealthAddr, mux, log)
	if err != nil {
		ln.Close()
		<-served
		return err
	}
	defer stop()
	log.Info("coronafs up", "node", cfg.Node, "nbd", ln.Addr().String(), "volumes", c.list())
	// Orphaned files go after a minute; looking every 10 s is plenty,
	// and each look is a chainfire read (under TCG, etcd's CPU is what a
	// fixture cluster spends when idle).
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-served
			return nil
		case err := <-served:
			return fmt.Errorf("coronafs: NBD server: %w", err)
		case <-tick.C:
			c.collect(ctx)
		}
	}
}

type coronafs struct {
	cfg CoronafsConfig
	cli *clientv3.Client
	log *slog.Logger
	dir string
}

func (c *coronafs) path(name string) string { return filepath.Join(c.dir, name+".img") }

// list names the volumes on this node's disk.
func (c *coronafs) list() []string {
	ents, _ := os.ReadDir(c.dir)
	out := []string{}
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".img"); ok && e.Type().IsRegular() && volumeName.MatchString(n) {
			out = append(out, n)
		}
	}
	return out
}

// open is the NBD server's export lookup: a volume file on this disk.
func (c *coronafs) open(name string) (NBDExport, error) {
	if !volumeName.MatchString(name) {
		return nil, fmt.Errorf("volume name %q: %w", name, fs.ErrNotExist)
	}
	f, err := os.OpenFile(c.path(name), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("volume %q is not on %s: %w", name, c.cfg.Node, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileExport{File: f, size: fi.Size()}, nil
}

// fileExport exports a file.
type fileExport struct {
	*os.File
	size int64
}

func (e *fileExport) Size() int64 { return e.size }

func (c *coronafs) create(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		SizeMiB int `json:"sizeMiB"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, `coronafs: want {"sizeMiB": N}: `+err.Error(), http.StatusBadRequest)
		return
	}
	var bad []string
	if !volumeName.MatchString(name) {
		bad = append(bad, fmt.Sprintf("name %q: 1-32 of a-z, 0-9 and -, starting with a letter or digit", name))
	}
	if req.SizeMiB < 0 || req.SizeMiB > 1024 {
		bad = append(bad, fmt.Sprintf("sizeMiB %d: 0 (default 64) to 1024", req.SizeMiB))
	}
	if len(bad) > 0 {
		http.Error(w, "coronafs: "+strings.Join(bad, "; "), http.StatusBadRequest)
		return
	}
	vol := Volume{Name: name, SizeMiB: cmp.Or(req.SizeMiB, 64), Node: c.cfg.Node, FS: VolumeFS,
		Export: net.JoinHostPort(c.cfg.Addr, fmt.Sprint(CoronafsNBDPort)), Created: time.Now().UTC()}
	if _, port, err := net.SplitHostPort(c.cfg.NBDListen); err == nil {
		vol.Export = net.JoinHostPort(c.cfg.Addr, port)
	}
	rec, _ := json.Marshal(vol)
	key := PrefixCoronafsVolumes + name
	t, err := c.cli.Txn(r.Context()).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(rec))).Commit()
	if err != nil {
		http.Error(w, "coronafs: chainfire: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !t.Succeeded {
		http.Error(w, "coronafs: volume "+name+" exists; delete it first", http.StatusConflict)
		return
	}
	if err := c.format(name, int64(vol.SizeMiB)<<20); err != nil {
		c.cli.Delete(context.WithoutCancel(r.Context()), key)
		http.Error(w, "coronafs: volume "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	c.log.Info("volume created", "volume", name, "MiB", vol.SizeMiB)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(vol)
}

// format makes a sparse volume file with an empty FAT32 filesystem,
// written aside and renamed.
func (c *coronafs) format(name string, size int64) error {
	f, err := os.CreateTemp(c.dir, ".new-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if _, err := fat32.Create(file.New(f, false), size, 0, 512, strings.ToUpper(name), false); err != nil {
		return fmt.Errorf("FAT32: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(f.Name(), c.path(name))
}

// delete removes a volume no VM uses.
func (c *coronafs) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	key, att := PrefixCoronafsVolumes+name, PrefixCoronafsAttachments+name
	t, err := c.cli.Txn(r.Context()).
		If(clientv3.Compare(clientv3.CreateRevision(att), "=", 0), clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(att), clientv3.OpGet(key)).Commit()
	if err != nil {
		http.Error(w, "coronafs: chainfire: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !t.Succeeded {
		if kvs := t.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			var a VolumeAttachment
			json.Unmarshal(kvs[0].Value, &a)
			http.Error(w, fmt.Sprintf("coronafs: volume %s is attached to VM %s on %s; delete the VM first", name, a.VM, a.Node), http.StatusConflict)
			return
		}
		http.Error(w, "coronafs: no volume "+name, http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// collect removes volume files of this node that no volume record names
// any more (deleted through any node), once a minute old.
func (c *coronafs) collect(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	vols, err := ListVolumes(rctx, c.cli)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, v := range vols {
		if v.Node == c.cfg.Node {
			keep[v.Name] = true
		}
	}
	for _, n := range c.list() {
		if fi, err := os.Stat(c.path(n)); err == nil && !keep[n] && time.Since(fi.ModTime()) > time.Minute {
			if os.Remove(c.path(n)) == nil {
				c.log.Info("volume file removed", "volume", n)
			}
		}
	}
}

// ListVolumes reads every volume and its attachment from chainfire.
func ListVolumes(ctx context.Context, cli *clientv3.Client) ([]Volume, error) {
	vols, err := cli.Get(ctx, PrefixCoronafsVolumes, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	atts, err := cli.Get(ctx, PrefixCoronafsAttachments, clientv3.WithPrefix(), clientv3.WithRev(vols.Header.Revision))
	if err != nil {
		return nil, err
	}
	byVol := map[string]*VolumeAttachment{}
	for _, kv := range atts.Kvs {
		var a VolumeAttachment
		if json.Unmarshal(kv.Value, &a) == nil {
			byVol[a.Volume] = &a
		}
	}
	out := []Volume{}
	for _, kv := range vols.Kvs {
		var v Volume
		if json.Unmarshal(kv.Value, &v) == nil {
			v.Attachment = byVol[v.Name]
			out = append(out, v)
		}
	}
	return out, nil
}

// claimVolume records that a VM uses a volume, under lease (the worker's):
// it fails with ErrVolumeAttached naming the VM and worker holding it.
// Claiming again for the same VM incarnation succeeds (a plasmavmc
// restart).
func claimVolume(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, a VolumeAttachment) (Volume, error) {
	key, att := PrefixCoronafsVolumes+a.Volume, PrefixCoronafsAttachments+a.Volume
	rec, _ := json.Marshal(a)
	t, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(att), "=", 0), clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpPut(att, string(rec), clientv3.WithLease(lease)), clientv3.OpGet(key)).
		Else(clientv3.OpGet(att), clientv3.OpGet(key)).Commit()
	if err != nil {
		return Volume{}, fmt.Errorf("volume %s: chainfire: %w", a.Volume, err)
	}
	var vol Volume
	if i := len(t.Responses) - 1; len(t.Responses[i].GetResponseRange().Kvs) == 1 {
		json.Unmarshal(t.Responses[i].GetResponseRange().Kvs[0].Value, &vol)
	}
	if vol.Name == "" {
		return Volume{}, fmt.Errorf("no volume %s (create it: POST /v1/volumes/%s on coronafs)", a.Volume, a.Volume)
	}
	if t.Succeeded {
		return vol, nil
	}
	var held VolumeAttachment
	if kvs := t.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		json.Unmarshal(kvs[0].Value, &held)
		if held.VMID == a.VMID && held.Node == a.Node {
			// Ours from before a restart: take it under the current lease.
			if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(att), "=", kvs[0].ModRevision)).
				Then(clientv3.OpPut(att, string(rec), clientv3.WithLease(lease))).Commit(); err != nil {
				return Volume{}, fmt.Errorf("volume %s: chainfire: %w", a.Volume, err)
			}
			return vol, nil
		}
	}
	return Volume{}, fmt.Errorf("%w: volume %s is attached to VM %s on %s since %s", ErrVolumeAttached, a.Volume, held.VM, held.Node, held.Since.Format(time.RFC3339))
}

// releaseVolume deletes a VM's attachment record (only its own).
func releaseVolume(ctx context.Context, cli *clientv3.Client, volume, vmID string) error {
	att := PrefixCoronafsAttachments + volume
	resp, err := cli.Get(ctx, att)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var held VolumeAttachment
	if json.Unmarshal(resp.Kvs[0].Value, &held) != nil || held.VMID != vmID {
		return nil
	}
	_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(att), "=", resp.Kvs[0].ModRevision)).Then(clientv3.OpDelete(att)).Commit()
	return err
}
