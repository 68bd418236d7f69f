package lanes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud/doubles"
)

// The storage cell's names: a volume and the VMs that use it, and the
// VMs sharing a bucket.
const (
	stVolume           = "mxvol"
	stVolA, stVolB     = "mxva", "mxvb"
	stObjA, stObjB     = "mxoa", "mxob"
	stMount            = "/data"
	stState            = "storage"
	stVolumeSizeMiB    = 32
	stVolumeEntryCount = 2
)

type stCell struct {
	workers [2]string
	api     string // a coronafs node
}

func st(m *MatrixEnv) *stCell {
	if s, ok := m.Values[stState].(*stCell); ok {
		return s
	}
	s := &stCell{}
	m.Values[stState] = s
	return s
}

// storageCell is the VM-hosting storage bundle: a coronafs volume moves
// between VMs on two workers (over the workers' kernel NBD clients) and
// is never used by two VMs at once; an object one VM writes to
// lightningstor is read by a VM on another worker.
func storageCell() MatrixCell {
	return MatrixCell{
		Name:   CellStorage,
		Bundle: []string{"plasmavmc", "coronafs", "lightningstor"},
		Checks: []MatrixCheck{
			{Name: "volume shared across workers", Run: stVolumeShared},
			{Name: "object shared across VMs", Run: stObjectShared},
		},
		Cleanup: func(ctx context.Context, m *MatrixEnv) {
			for _, vm := range []string{stVolA, stVolB, stObjA, stObjB} {
				m.DeleteVM(ctx, vm)
			}
			if s := st(m); s.api != "" {
				stDeleteVolume(ctx, m, s.api)
			}
		},
	}
}

// stDeleteVolume deletes the cell's volume once no VM holds it (a
// deleted VM lets go of it within seconds).
func stDeleteVolume(ctx context.Context, m *MatrixEnv, node string) error {
	return until(ctx, "volume "+stVolume+" deleted", m.r.Scaled(30*time.Second), func(ctx context.Context) error {
		code, body, err := m.API(ctx, node, "coronafs", http.MethodDelete, "/v1/volumes/"+stVolume, "")
		if err != nil {
			return err
		}
		if code != http.StatusNoContent && code != http.StatusNotFound {
			return fmt.Errorf("DELETE /v1/volumes/%s on %s: %d %s", stVolume, node, code, strings.TrimSpace(body))
		}
		return nil
	})
}

// stVM reads a VM through plasmavmc on node.
func stVM(ctx context.Context, m *MatrixEnv, node, name string) (doubles.VM, error) {
	var vm doubles.VM
	code, body, err := m.API(ctx, node, "plasmavmc", http.MethodGet, "/v1/vms/"+name, "")
	if err != nil {
		return vm, err
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &vm) != nil {
		return vm, fmt.Errorf("GET /v1/vms/%s on %s: %d %s", name, node, code, strings.TrimSpace(body))
	}
	return vm, nil
}

// stVolumeShared: a VM on worker A mounts a fresh volume and keeps its
// guestbook on it; a VM on worker B asking for the same volume is held
// back while A has it; once A is deleted, B starts with the volume and
// lists every entry A wrote.
func stVolumeShared(ctx context.Context, m *MatrixEnv) error {
	s := st(m)
	workers, cfs := m.Nodes("plasmavmc"), m.Nodes("coronafs")
	if len(workers) < 2 {
		return fmt.Errorf("plasmavmc runs on %v; the cell needs two workers", workers)
	}
	s.workers, s.api = [2]string{workers[0], workers[1]}, cfs[0]
	for _, vm := range []string{stVolA, stVolB} {
		m.DeleteVM(ctx, vm) // left by an earlier run
	}
	if err := stDeleteVolume(ctx, m, s.api); err != nil {
		return err
	}
	code, body, err := m.API(ctx, s.api, "coronafs", http.MethodPost, "/v1/volumes/"+stVolume, fmt.Sprintf(`{"sizeMiB": %d}`, stVolumeSizeMiB))
	if err != nil || code != http.StatusCreated {
		return fmt.Errorf("create volume %s on %s: %d %s %v", stVolume, s.api, code, strings.TrimSpace(body), err)
	}
	var vol doubles.Volume
	json.Unmarshal([]byte(body), &vol)
	m.r.Say(s.api, fmt.Sprintf("volume %s (%d MiB, %s) on %s's disk, exported at %s", vol.Name, vol.SizeMiB, vol.FS, vol.Node, vol.Export))
	spec := func(name, node string) doubles.VMSpec {
		return doubles.VMSpec{Name: name, Image: DemoImage, MemoryMiB: 64, Node: node,
			Volumes: []doubles.VolumeMount{{Volume: stVolume, Path: stMount}},
			Command: []string{"/bin/webapp", "--listen", ":80", "--data", stMount}}
	}
	a, err := m.CreateVM(ctx, spec(stVolA, s.workers[0]))
	if err != nil {
		return err
	}
	if err := stServing(ctx, m, a); err != nil {
		return err
	}
	var wrote []guestEntry
	from := m.other(a.Node)
	for i := range stVolumeEntryCount {
		e, err := stSign(ctx, m, from, a.Status.IP, fmt.Sprintf("volume entry %d of run %s", i+1, m.r.ID()))
		if err != nil {
			return err
		}
		wrote = append(wrote, e)
	}
	m.r.Say(a.Node, fmt.Sprintf("%d entries written to volume %s through VM %s on %s", len(wrote), stVolume, stVolA, a.Node))

	// One VM at a time: B, on the other worker, is held back.
	raw, _ := json.Marshal(spec(stVolB, s.workers[1]))
	if code, body, err := m.API(ctx, s.workers[1], "plasmavmc", http.MethodPost, "/v1/vms", string(raw)); err != nil || code != http.StatusCreated {
		return fmt.Errorf("create VM %s: %d %s %v", stVolB, code, strings.TrimSpace(body), err)
	}
	err = until(ctx, "VM "+stVolB+" held back", m.r.Scaled(30*time.Second), func(ctx context.Context) error {
		b, err := stVM(ctx, m, s.workers[1], stVolB)
		if err != nil {
			return err
		}
		if b.Status == nil {
			return fmt.Errorf("no status of %s yet", stVolB)
		}
		if b.Status.State == doubles.VMRunning {
			return errHeldTwice
		}
		if !strings.Contains(b.Status.Error, "attached to VM "+stVolA) {
			return fmt.Errorf("VM %s: %s %q", stVolB, b.Status.State, b.Status.Error)
		}
		m.r.Say(s.workers[1], fmt.Sprintf("VM %s held back: %s", stVolB, b.Status.Error))
		return nil
	})
	if err != nil {
		return invariant("one VM per volume", "VM %s on %s asked for volume %s while %s on %s has it: %v", stVolB, s.workers[1], stVolume, stVolA, a.Node, err)
	}

	// A goes; B gets the volume and A's entries.
	t0 := time.Now()
	if err := m.DeleteVM(ctx, stVolA); err != nil {
		return err
	}
	var b doubles.VM
	err = until(ctx, "VM "+stVolB+" runs with the volume", m.r.Scaled(time.Minute), func(ctx context.Context) error {
		var err error
		if b, err = stVM(ctx, m, s.workers[1], stVolB); err != nil {
			return err
		}
		if b.Status == nil || b.Status.State != doubles.VMRunning || b.Status.IP == "" {
			return fmt.Errorf("VM %s not running: %+v", stVolB, b.Status)
		}
		return nil
	})
	if err != nil {
		return invariant("volume handed over", "%v", err)
	}
	m.r.Event(b.Node, "volume moved", fmt.Sprintf("volume %s: VM %s on %s → VM %s on %s after %.1fs", stVolume, stVolA, a.Node, stVolB, b.Node, time.Since(t0).Seconds()))
	var got []guestEntry
	err = until(ctx, "entries through "+stVolB, m.r.Scaled(time.Minute), func(ctx context.Context) error {
		got, err = m.entries(ctx, m.other(b.Node), b.Status.IP)
		return err
	})
	if err != nil {
		return err
	}
	if lost := missing(wrote, got); len(lost) > 0 {
		return invariant("volume shared across workers", "%d of %d entries written on %s missing from volume %s as VM %s on %s mounts it: %s",
			len(lost), len(wrote), a.Node, stVolume, stVolB, b.Node, strings.Join(lost, ", "))
	}
	m.r.Say(b.Node, fmt.Sprintf("all %d entries read back from volume %s through VM %s on %s", len(wrote), stVolume, stVolB, b.Node))
	return nil
}

// stServing waits until the guestbook in vm answers (its process starts
// a few seconds after the VM, its store first).
func stServing(ctx context.Context, m *MatrixEnv, vm doubles.VM) error {
	err := until(ctx, "guestbook in VM "+vm.Name, m.r.Scaled(time.Minute), func(ctx context.Context) error {
		_, err := m.entries(ctx, m.other(vm.Node), vm.Status.IP)
		return err
	})
	if err != nil {
		return invariant("VM serves", "the guestbook in VM %s on %s (%s) does not answer: %v", vm.Name, vm.Node, vm.Status.IP, err)
	}
	return nil
}

var errHeldTwice = fmt.Errorf("running: the volume is used by two VMs")

// stSign writes one guestbook entry through the VM at ip, from node.
func stSign(ctx context.Context, m *MatrixEnv, node, ip, msg string) (guestEntry, error) {
	return sign(ctx, m.demo, node, ip, "matrix "+m.r.ID(), msg)
}

// missing lists the entries of want (by ID) that got lacks.
func missing(want, got []guestEntry) []string {
	var out []string
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g guestEntry) bool { return g.ID == w.ID }) {
			out = append(out, fmt.Sprintf("%s (%q)", w.ID, w.Message))
		}
	}
	return out
}

// stObjectShared: two VMs on two workers keep one guestbook in the same
// fresh lightningstor bucket; an entry signed through the first is listed
// by the second, which reads the object back through lightningstor.
func stObjectShared(ctx context.Context, m *MatrixEnv) error {
	s := st(m)
	if s.workers[0] == "" {
		workers := m.Nodes("plasmavmc")
		if len(workers) < 2 {
			return fmt.Errorf("plasmavmc runs on %v; the cell needs two workers", workers)
		}
		s.workers = [2]string{workers[0], workers[1]}
	}
	bucket := "mx-" + strings.ToLower(m.r.ID())
	var vms [2]doubles.VM
	for i, name := range []string{stObjA, stObjB} {
		m.DeleteVM(ctx, name)
		vm, err := m.CreateVM(ctx, doubles.VMSpec{Name: name, Image: DemoImage, MemoryMiB: 64, Node: s.workers[i],
			Command: []string{"/bin/webapp", "--listen", ":80", "--bucket", bucket}})
		if err != nil {
			return err
		}
		vms[i] = vm
	}
	for _, vm := range vms {
		if err := stServing(ctx, m, vm); err != nil {
			return err
		}
	}
	e, err := stSign(ctx, m, m.other(vms[0].Node), vms[0].Status.IP, "object of run "+m.r.ID())
	if err != nil {
		return err
	}
	var got []guestEntry
	err = until(ctx, "entries through "+stObjB, m.r.Scaled(time.Minute), func(ctx context.Context) error {
		got, err = m.entries(ctx, m.other(vms[1].Node), vms[1].Status.IP)
		return err
	})
	if err != nil {
		return err
	}
	if lost := missing([]guestEntry{e}, got); len(lost) > 0 || len(got) != 1 {
		return invariant("object shared across VMs", "VM %s on %s lists %d entries of bucket %s, want exactly the one VM %s on %s wrote: missing %v",
			stObjB, vms[1].Node, len(got), bucket, stObjA, vms[0].Node, lost)
	}
	m.r.Say(vms[1].Node, fmt.Sprintf("object %s written by VM %s on %s read by VM %s on %s through lightningstor (bucket %s)", e.ID, stObjA, vms[0].Node, stObjB, vms[1].Node, bucket))
	return nil
}
