package lanes

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
	"github.com/photoncloud/testkit/ultracloud/fixture"
)

// The VM and image fresh-demo-vm-webapp creates.
const (
	DemoVM    = "webapp"
	DemoImage = "webapp"
)

// DemoVMWebappOptions configure fresh-demo-vm-webapp.
type DemoVMWebappOptions struct {
	// Fixture builds the guest (and the webapp's VM image).
	Fixture *fixture.Builder
	// Cluster is a running cluster (`ultracloud cluster demo-vm-webapp`);
	// nil boots the fresh-cluster topology in the run's work dir.
	Cluster cluster.Operator
	// Entries is how many guestbook entries the lane writes (default 3).
	Entries int
	// InMemory runs the webapp with its entries in memory only: a broken
	// app whose entries die with the VM, which the persistence check must
	// catch (it fails naming the lost entries).
	InMemory bool
	// Keep leaves the VM running at the end (`serve-vm-webapp` forwards
	// it); by default the lane deletes what it created.
	Keep bool
}

// FreshDemoVMWebapp is the VM-hosting bundle proof for plasmavmc +
// prismnet with state persisted through lightningstor: the webapp's image
// goes to every worker's disk; a VM created through plasmavmc gets a
// prismnet address; the webapp answers from every other node; entries
// are written; the VM is deleted and the worker it ran on killed; the VM
// is created again, on another worker; every entry is still there (kept
// in lightningstor, on the control-plane disks); the killed worker is
// restarted and rejoins (plasmavmc and prismnet registered again, the VM
// not running twice). Each step is a check with a bound; the report names
// the killed worker and the VM's new one.
func FreshDemoVMWebapp(ctx context.Context, cfg ultracloud.RunConfig, o DemoVMWebappOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "fresh-demo-vm-webapp", Topology: ultracloud.TopologyFreshCluster, Fixture: o.Fixture, SSH: true, Persist: true}
	if o.Cluster != nil {
		t := o.Cluster.Topology()
		spec.Topo = &t
	}
	if o.Entries < 0 {
		return nil, fmt.Errorf("%w: entries %d: want 1 or more (0: the default, 3)", ultracloud.ErrInvalid, o.Entries)
	}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		op, art, err := demoCluster(ctx, r, o.Cluster, o.Fixture)
		if err != nil {
			return err
		}
		d, err := newDemo(r, op, o)
		if err != nil {
			return err
		}
		defer d.close()
		return d.run(ctx, art.WebappImage)
	})
}

// demo is one fresh-demo-vm-webapp run.
type demo struct {
	*smoke
	o       DemoVMWebappOptions
	vmNodes []string // plasmavmc nodes
	netNode []string // prismnet nodes
}

func newDemo(r *Run, op cluster.Operator, o DemoVMWebappOptions) (*demo, error) {
	s, err := newSmoke(r, op, FreshSmokeOptions{}, 1, 0)
	if err != nil {
		return nil, err
	}
	d := &demo{smoke: s, o: o}
	for _, n := range s.topo.Nodes {
		if slices.Contains(n.Components, "plasmavmc") {
			d.vmNodes = append(d.vmNodes, n.Name)
		}
		if slices.Contains(n.Components, "prismnet") {
			d.netNode = append(d.netNode, n.Name)
		}
	}
	lightningstor := slices.ContainsFunc(s.topo.Nodes, func(n ultracloud.Node) bool { return slices.Contains(n.Components, "lightningstor") })
	if len(d.vmNodes) < 2 || !lightningstor {
		s.close()
		return nil, fmt.Errorf("%w: %s needs plasmavmc and prismnet on at least two workers and lightningstor; topology %s has plasmavmc on %v",
			ultracloud.ErrInvalid, r.spec.Name, s.topo.Name, d.vmNodes)
	}
	return d, nil
}

func (d *demo) run(ctx context.Context, image string) error {
	if err := d.readiness(ctx); err != nil {
		return err
	}
	if err := d.r.Step(ctx, "", "image on every worker", func(ctx context.Context) error { return d.upload(ctx, image) }); err != nil {
		return err
	}
	// A VM left by an earlier run on a running cluster goes first.
	d.deleteVM(ctx, d.vmNodes[0])
	var first doubles.VM
	err := d.r.Step(ctx, "", "create VM", func(ctx context.Context) (err error) {
		first, err = d.create(ctx, nil)
		return err
	})
	if err != nil {
		return err
	}
	if !d.o.Keep {
		defer d.deleteVM(context.WithoutCancel(ctx), "")
	}
	killed := first.Node
	// A run that fails after the kill still brings the worker back: the
	// cluster keeps running for the next lane.
	down := false
	defer func() {
		if down {
			d.inject(context.WithoutCancel(ctx), cluster.Fault{Kind: cluster.FaultRestart, Node: killed})
		}
	}()
	if err := d.r.Step(ctx, "", "answers from every node", func(ctx context.Context) error { return d.answers(ctx, first, killed) }); err != nil {
		return err
	}
	var written []guestEntry
	err = d.r.Step(ctx, "", "write entries", func(ctx context.Context) (err error) {
		written, err = d.write(ctx, first)
		return err
	})
	if err != nil {
		return err
	}
	err = d.r.Step(ctx, killed, "delete VM and kill its worker", func(ctx context.Context) error {
		if err := d.deleteVM(ctx, d.otherWorker(killed)); err != nil {
			return err
		}
		t0 := time.Now()
		if err := d.inject(ctx, cluster.Fault{Kind: cluster.FaultKill, Node: killed}); err != nil {
			return err
		}
		down = true
		d.t.dropAll(killed)
		// plasmavmc places only on live workers: wait for the lease.
		err := until(ctx, killed+" leaves the plasmavmc pool", d.r.Scaled(time.Minute), func(ctx context.Context) error {
			live, err := d.livePlasmavmc(ctx)
			if err != nil {
				return err
			}
			if slices.Contains(live, killed) {
				return fmt.Errorf("%s is still registered (live: %v)", killed, live)
			}
			return nil
		})
		if err != nil {
			return invariant("worker death detected", "%v", err)
		}
		d.phase(killed, "kill-worker", "detected", t0)
		return nil
	})
	if err != nil {
		return err
	}
	var second doubles.VM
	err = d.r.Step(ctx, "", "create VM again", func(ctx context.Context) (err error) {
		second, err = d.create(ctx, nil)
		if err != nil {
			return err
		}
		if second.Node == killed {
			return invariant("placement", "the VM was placed on %s, the killed worker", killed)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.r.Say("", fmt.Sprintf("killed worker %s; the VM runs on %s now (%s)", killed, second.Node, second.Status.IP))
	d.r.Event(second.Node, "vm moved", fmt.Sprintf("killed worker %s; VM %s now on %s at %s", killed, DemoVM, second.Node, second.Status.IP))
	err = d.r.Step(ctx, "", "entries persist", func(ctx context.Context) error {
		var got []guestEntry
		err := until(ctx, "the webapp after the move", d.r.Scaled(time.Minute), func(ctx context.Context) (err error) {
			got, err = d.entries(ctx, d.other(second.Node), second.Status.IP)
			return err
		})
		if err != nil {
			return err
		}
		var lost []string
		for _, w := range written {
			if !slices.ContainsFunc(got, func(g guestEntry) bool { return g.ID == w.ID && g.Message == w.Message }) {
				lost = append(lost, fmt.Sprintf("%s (%q by %s)", w.ID, w.Message, w.Name))
			}
		}
		if len(lost) > 0 {
			return invariant("persistence", "%d of %d entries lost with the VM on %s: %s", len(lost), len(written), killed, strings.Join(lost, ", "))
		}
		d.r.Say("", fmt.Sprintf("all %d entries read back through the VM on %s", len(written), second.Node))
		return nil
	})
	if err != nil {
		return err
	}
	down = false // rejoin restarts it
	return d.r.Step(ctx, killed, "killed worker rejoins", func(ctx context.Context) error { return d.rejoin(ctx, killed, second) })
}

// other is a node other than not that runs prismnet (so it reaches VMs).
func (d *demo) other(not string) string {
	for _, n := range d.netNode {
		if n != not {
			return n
		}
	}
	return not
}

// otherWorker is a plasmavmc node other than not.
func (d *demo) otherWorker(not string) string {
	for _, n := range d.vmNodes {
		if n != not {
			return n
		}
	}
	return not
}

// plasmavmc answers an API call on node's plasmavmc.
func (d *demo) plasmavmc(ctx context.Context, node, method, path, body string) (int, string, error) {
	u, err := d.componentURL(ctx, node, "plasmavmc")
	if err != nil {
		return 0, "", err
	}
	return d.t.send(ctx, node, method, u+path, body, "Content-Type", "application/json")
}

// upload stores the webapp's VM image on every plasmavmc worker's disk.
func (d *demo) upload(ctx context.Context, image string) error {
	raw, err := os.ReadFile(image)
	if err != nil {
		return fmt.Errorf("the webapp's VM image: %w", err)
	}
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:])
	for _, n := range d.vmNodes {
		t0 := time.Now()
		// A worker that has this very image (same SHA-256) keeps it.
		var have doubles.ImageInfo
		if code, body, err := d.plasmavmc(ctx, n, http.MethodGet, "/v1/images/"+DemoImage, ""); err == nil && code == http.StatusOK &&
			json.Unmarshal([]byte(body), &have) == nil && have.SHA256 == want {
			d.r.Say(n, fmt.Sprintf("image %s (%d KiB, sha256 %.12s) already on %s's disk", DemoImage, len(raw)>>10, want, n))
			continue
		}
		// Not `until`: one upload of a few MiB through SSH may take longer
		// than its 15 s attempts on a loaded host.
		err := retry(ctx, "image on "+n, 3, d.r.Scaled(2*time.Minute), func(ctx context.Context) error {
			u, err := d.componentURL(ctx, n, "plasmavmc")
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, u+"/v1/images/"+DemoImage, bytes.NewReader(raw))
			if err != nil {
				return err
			}
			c := d.t.http(n)
			c.Timeout = 0 // the attempt's context bounds it
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var got doubles.ImageInfo
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
				return fmt.Errorf("PUT image on %s: %s", n, resp.Status)
			}
			if got.SHA256 != want {
				return fmt.Errorf("image on %s: sha256 %s stored, %s sent", n, got.SHA256, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
		d.r.Say(n, fmt.Sprintf("image %s (%d KiB) on %s's disk in %.1fs", DemoImage, len(raw)>>10, n, time.Since(t0).Seconds()))
	}
	return nil
}

// vmFailingFor is how long a VM's worker may report it failing to start
// (trying again every two seconds) before createVM takes that as the
// answer.
const vmFailingFor = 20 * time.Second

// create creates the VM through plasmavmc and waits until it runs with a
// prismnet address.
func (d *demo) create(ctx context.Context, avoid []string) (doubles.VM, error) {
	cmd := []string{"/bin/webapp", "--listen", ":80", "--s3", fmt.Sprintf("http://%s:%d", doubles.ServicesIP, doubles.LightningstorPort), "--bucket", "guestbook-" + strings.ToLower(d.r.ID())}
	if d.o.InMemory {
		cmd = append(cmd, "--memory")
	}
	return d.createVM(ctx, doubles.VMSpec{Name: DemoVM, Image: DemoImage, MemoryMiB: 96, Command: cmd, Avoid: avoid})
}

// createVM creates a VM through a live worker's plasmavmc and waits until
// it runs with a prismnet address.
func (d *demo) createVM(ctx context.Context, vmSpec doubles.VMSpec) (doubles.VM, error) {
	spec, _ := json.Marshal(vmSpec)
	var api string
	// Through a live worker's API (a killed one's SSH would eat the time).
	err := until(ctx, "create through plasmavmc", d.r.Scaled(30*time.Second), func(ctx context.Context) error {
		live, err := d.livePlasmavmc(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, n := range live {
			code, body, err := d.plasmavmc(ctx, n, http.MethodPost, "/v1/vms", string(spec))
			// 409 "exists": an earlier attempt was created but its answer
			// timed out under load (any older VM of this name was deleted
			// first); the wait below checks it runs.
			if err == nil && (code == http.StatusCreated || (code == http.StatusConflict && strings.Contains(body, "exists"))) {
				api = n
				return nil
			}
			errs = append(errs, fmt.Errorf("%s: %d %s %v", n, code, strings.TrimSpace(body), err))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return doubles.VM{}, err
	}
	t0 := time.Now()
	var vm doubles.VM
	var failing time.Time // since when its worker reports it failing to start
	err = until(ctx, "VM running", d.r.Scaled(time.Minute), func(ctx context.Context) error {
		code, body, err := d.plasmavmc(ctx, api, http.MethodGet, "/v1/vms/"+vmSpec.Name, "")
		if err != nil {
			return err
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &vm) != nil {
			return fmt.Errorf("GET /v1/vms/%s: %d %s", vmSpec.Name, code, body)
		}
		if vm.Status != nil && vm.Status.State == doubles.VMError {
			// Its worker tries again every few seconds; an error that
			// stays is the answer.
			if failing.IsZero() {
				failing = time.Now()
			}
			if time.Since(failing) > vmFailingFor {
				return giveUp(fmt.Errorf("VM on %s fails to start for %s: %s", vm.Node, vmFailingFor, vm.Status.Error))
			}
			return fmt.Errorf("VM on %s fails to start: %s", vm.Node, vm.Status.Error)
		}
		failing = time.Time{}
		if vm.Status == nil || vm.Status.State != doubles.VMRunning || vm.Status.IP == "" {
			return fmt.Errorf("VM on %s not running yet: %+v", vm.Node, vm.Status)
		}
		return nil
	})
	if err != nil {
		return vm, invariant("VM runs", "%v", err)
	}
	d.r.Say(vm.Node, fmt.Sprintf("VM %s running on %s at %s (prismnet) after %.1fs", vm.Name, vm.Node, vm.Status.IP, time.Since(t0).Seconds()))
	d.r.Event(vm.Node, "vm running", fmt.Sprintf("VM %s on %s at %s", vm.Name, vm.Node, vm.Status.IP))
	return vm, nil
}

// deleteVM deletes the VM through node's plasmavmc ("" for any); a VM
// that does not exist is not an error.
func (d *demo) deleteVM(ctx context.Context, node string) error {
	return d.deleteNamed(ctx, node, DemoVM)
}

// deleteNamed deletes VM name through node's plasmavmc ("" for any live
// one); a VM that does not exist is not an error.
func (d *demo) deleteNamed(ctx context.Context, node, name string) error {
	nodes := d.vmNodes
	if node != "" {
		nodes = []string{node}
	}
	var errs []error
	for _, n := range nodes {
		code, body, err := d.plasmavmc(ctx, n, http.MethodDelete, "/v1/vms/"+name, "")
		if err == nil && (code == http.StatusNoContent || code == http.StatusNotFound) {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %d %s %v", n, code, strings.TrimSpace(body), err))
	}
	return fmt.Errorf("delete VM %s: %w", name, errors.Join(errs...))
}

// livePlasmavmc lists the workers registered with plasmavmc.
func (d *demo) livePlasmavmc(ctx context.Context) ([]string, error) {
	raw, err := d.kv.Get(ctx, doubles.PrefixPlasmavmcNodes, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range raw.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), doubles.PrefixPlasmavmcNodes))
	}
	return out, nil
}

type guestEntry struct {
	ID, Name, Message string
}

// entries lists the guestbook through the VM's address, from node.
func (d *demo) entries(ctx context.Context, node, ip string) ([]guestEntry, error) {
	code, body, err := d.t.get(ctx, node, http.MethodGet, "http://"+net.JoinHostPort(ip, "80")+"/api/entries")
	if err != nil {
		return nil, fmt.Errorf("from %s: %w", node, err)
	}
	var es []guestEntry
	if code != http.StatusOK || json.Unmarshal([]byte(body), &es) != nil {
		return nil, fmt.Errorf("from %s: GET /api/entries: %d %q", node, code, body)
	}
	return es, nil
}

// answers: the webapp answers through its prismnet address from every
// node on the tenant network but its own, HTML and JSON.
func (d *demo) answers(ctx context.Context, vm doubles.VM, host string) error {
	for _, n := range d.netNode {
		if n == host {
			continue
		}
		t0 := time.Now()
		err := until(ctx, "webapp from "+n, d.r.Scaled(time.Minute), func(ctx context.Context) error {
			code, page, err := d.t.get(ctx, n, http.MethodGet, "http://"+net.JoinHostPort(vm.Status.IP, "80")+"/")
			if err != nil {
				return err
			}
			if code != http.StatusOK || !strings.Contains(page, "UltraCloud guestbook") {
				return fmt.Errorf("GET / from %s: %d %.200q", n, code, page)
			}
			_, err = d.entries(ctx, n, vm.Status.IP)
			return err
		})
		if err != nil {
			return invariant("reachable", "the webapp at %s (on %s) does not answer from %s: %v", vm.Status.IP, host, n, err)
		}
		d.r.Say(n, fmt.Sprintf("webapp at %s answers from %s (%.1fs)", vm.Status.IP, n, time.Since(t0).Seconds()))
	}
	return nil
}

// write signs the guestbook Entries times through the JSON API, from a
// node other than the VM's, and reads them back.
func (d *demo) write(ctx context.Context, vm doubles.VM) ([]guestEntry, error) {
	from := d.other(vm.Node)
	var out []guestEntry
	for i := range cmp.Or(d.o.Entries, 3) {
		e, err := sign(ctx, d, from, vm.Status.IP, "lane "+d.r.ID(), fmt.Sprintf("entry %d of run %s", i+1, d.r.ID()))
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	got, err := d.entries(ctx, from, vm.Status.IP)
	if err != nil {
		return out, err
	}
	if len(got) < len(out) {
		return out, invariant("write", "%d entries written, %d listed", len(out), len(got))
	}
	d.r.Say("", fmt.Sprintf("%d entries written through %s from %s", len(out), vm.Status.IP, from))
	return out, nil
}

// sign writes one guestbook entry through the webapp at ip, from node.
// The entry's ID is chosen here (time first: IDs sort the listing), so an
// attempt whose answer was lost on a loaded host is sent again without a
// duplicate.
func sign(ctx context.Context, d *demo, node, ip, name, msg string) (guestEntry, error) {
	raw := make([]byte, 4)
	rand.Read(raw)
	id := time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(raw)
	body, _ := json.Marshal(map[string]string{"id": id, "name": name, "message": msg})
	var e guestEntry
	err := retry(ctx, "entry "+id, 3, d.r.Scaled(20*time.Second), func(ctx context.Context) error {
		code, resp, err := d.t.send(ctx, node, http.MethodPost, "http://"+net.JoinHostPort(ip, "80")+"/api/entries", string(body), "Content-Type", "application/json")
		if err != nil {
			return err
		}
		if code != http.StatusCreated || json.Unmarshal([]byte(resp), &e) != nil || e.ID != id {
			return fmt.Errorf("POST /api/entries to %s from %s: %d %q", ip, node, code, resp)
		}
		return nil
	})
	return e, err
}

// rejoin restarts the killed worker and waits until it is back in the
// plasmavmc pool and on the tenant network, with the VM still running
// once, elsewhere.
func (d *demo) rejoin(ctx context.Context, node string, vm doubles.VM) error {
	t0 := time.Now()
	if err := d.inject(ctx, cluster.Fault{Kind: cluster.FaultRestart, Node: node}); err != nil {
		return err
	}
	d.t.dropAll(node)
	err := until(ctx, node+" rejoins", d.r.Scaled(3*time.Minute), func(ctx context.Context) error {
		live, err := d.livePlasmavmc(ctx)
		if err != nil {
			return err
		}
		if !slices.Contains(live, node) {
			return fmt.Errorf("%s is not registered with plasmavmc (live: %v)", node, live)
		}
		resp, err := d.kv.Get(ctx, doubles.PrefixPrismnetNodes+node)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%s is not on the tenant network", node)
		}
		// The VM runs once, where it was placed, and answers from the
		// restarted worker across the overlay.
		vms, err := doubles.ListVMs(ctx, d.kv)
		if err != nil {
			return err
		}
		for _, v := range vms {
			if v.Name == DemoVM && (v.Status == nil || v.Status.Node != vm.Node || v.Status.ID != vm.ID) {
				return invariant("no duplicate", "VM %s: %+v (want %s on %s)", DemoVM, v.Status, vm.ID, vm.Node)
			}
		}
		_, err = d.entries(ctx, node, vm.Status.IP)
		return err
	})
	if err != nil {
		return err
	}
	d.phase(node, "kill-worker", "recovered", t0)
	return nil
}
