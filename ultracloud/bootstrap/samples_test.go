package bootstrap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The disko samples of testdata/disko-samples were produced by evaluating
// disko's own types (see the README there): NAME.json with every default
// disko fills in, NAME.raw.json only what the example writes.
var diskoSamples = []struct {
	name        string
	unsupported []string // Unsupported types, sorted
	nodev       int
}{
	{"simple-efi", nil, 0},
	{"hybrid", nil, 0},
	{"hybrid-mbr", []string{"hybrid MBR"}, 0},
	{"hybrid-tmpfs-on-root", nil, 1},
	{"mdadm", []string{"mdadm", "mdraid", "mdraid"}, 0},
	{"luks-lvm", []string{"luks", "lvm_vg"}, 0},
	{"swap", nil, 0},
	{"long-device-name", nil, 0},
	{"negative-size", nil, 0},
	{"legacy-table", []string{"table"}, 0},
}

func loadSample(t testing.TB, file string) *DiskoPlan {
	t.Helper()
	return parsePlanFile(t, filepath.Join("testdata/disko-samples", file))
}

// Every sample parses in both forms; what cannot be applied is reported by
// name; the defaults this package fills into the raw form (labels, hashed
// long labels, swap's type, priorities, order) are the ones disko filled
// into the evaluated form, so both lay out alike.
func TestDiskoSamplesParse(t *testing.T) {
	for _, s := range diskoSamples {
		t.Run(s.name, func(t *testing.T) {
			ev, raw := loadSample(t, s.name+".json"), loadSample(t, s.name+".raw.json")
			for _, p := range []*DiskoPlan{ev, raw} {
				var got []string
				for _, u := range p.Unsupported {
					got = append(got, u.Type)
				}
				slices.Sort(got)
				if !slices.Equal(got, s.unsupported) {
					t.Errorf("unsupported %v, want %v", got, s.unsupported)
				}
				if len(p.Nodev) != s.nodev {
					t.Errorf("nodev %+v, want %d", p.Nodev, s.nodev)
				}
				if len(s.unsupported) > 0 {
					err := p.Validate(false)
					for _, u := range s.unsupported {
						if err == nil || !strings.Contains(err.Error(), "unsupported: "+u) {
							t.Errorf("Validate does not name %q: %v", u, err)
						}
					}
				}
			}
			if len(ev.Disks) != len(raw.Disks) {
				t.Fatalf("%d disks evaluated, %d raw", len(ev.Disks), len(raw.Disks))
			}
			for i, d := range ev.Disks {
				r := raw.Disks[i]
				if d.Table != "gpt" {
					continue
				}
				for j, p := range d.Partitions {
					q := r.Partitions[j]
					if p.Index != q.Index || p.Name != q.Name || p.Label != q.Label || p.Type != q.Type || p.Priority != q.Priority {
						t.Errorf("partition %d: evaluated %d %s %q %s prio %d, raw %d %s %q %s prio %d",
							j, p.Index, p.Name, p.Label, p.Type, p.Priority, q.Index, q.Name, q.Label, q.Type, q.Priority)
					}
				}
				a, errA := d.Layout(20 << 30)
				b, errB := r.Layout(20 << 30)
				if errA != nil || errB != nil || !slices.Equal(a, b) {
					t.Errorf("disk %s: evaluated %v %v, raw %v %v", d.Name, a, errA, b, errB)
				}
			}
		})
	}
	// Figures from the samples' README.
	p := loadSample(t, "simple-efi.json")
	ext, err := p.Disks[0].Layout(20 << 30)
	if err != nil || ext[0].FirstLBA != 2048 || ext[0].LastLBA != 1026047 || ext[1].FirstLBA != 1026048 || ext[1].LastLBA != 41940991 {
		t.Errorf("simple-efi on 20 GiB: %+v %v", ext, err)
	}
	if n, err := sectorsOf("2P"); err != nil || n != 2<<50/512 {
		t.Errorf("2P: %d sectors %v", n, err)
	}
	if n, err := sectorsOf("4096"); err != nil || n != 4096 {
		t.Errorf("a bare number is sectors: %d %v", n, err)
	}
	if d := loadSample(t, "swap.raw.json").Disks[0]; d.Partitions[1].Type != "8200" || d.Partitions[2].Type != "8300" {
		t.Errorf("swap content defaults to 8200: %+v", d.Partitions)
	}
	if d := loadSample(t, "long-device-name.raw.json").Disks[0]; d.Partitions[0].Label != "36601cdc461d3589a280204a4b674b3cad5d" {
		t.Errorf("long label not hashed as disko does: %q", d.Partitions[0].Label)
	}
}

// The geometry of every GPT disk of the samples is what sgdisk makes of
// the commands disko generates, on disks of several sizes; plus the sgdisk
// rules measured here (bare numbers are sectors, absolute ends inclusive,
// explicit starts aligned down, "+N" from the requested start, alignment).
func TestDiskoSamplesMatchSgdisk(t *testing.T) {
	slow(t)
	need(t, "sgdisk")
	// sgdisk waits on sync, not CPU: the cases run in parallel.
	check := func(t *testing.T, d *Disk, size int64) {
		ext, lerr := d.Layout(size)
		img := sparse(t, size)
		// disko runs one sgdisk per partition; sgdisk applies options in
		// order, so one run with all of them makes the same table, faster.
		var args []string
		for _, a := range sgdiskCommands(d) {
			args = append(args, a...)
		}
		out, err := exec.Command("sgdisk", append(args, img)...).CombinedOutput()
		if err != nil && lerr != nil {
			return // both refuse: the plan does not fit this disk
		}
		if err != nil {
			t.Fatalf("sgdisk %v: %v %s (we laid it out: %+v)", args, err, out, ext)
		}
		if lerr != nil {
			t.Fatalf("we refuse (%v) what sgdisk lays out", lerr)
		}
		got := sgdiskTable(img)
		if len(got) != len(ext) {
			t.Errorf("sgdisk made %d partitions, we %d", len(got), len(ext))
		}
		sameAsSgdisk(t, ext, got)
	}
	sizes := []int64{20 << 30, 3<<30 + 12345*512, 1_000_000_000}
	for _, s := range diskoSamples {
		p := loadSample(t, s.name+".json")
		for _, d := range p.Disks {
			if d.Table != "gpt" {
				continue
			}
			for _, size := range sizes {
				t.Run(fmt.Sprintf("%s/%s/%d", s.name, d.Name, size), func(t *testing.T) { t.Parallel(); check(t, &d, size) })
			}
		}
	}
	for _, tc := range []struct{ name, parts string }{
		{"bare sectors", `"a":{"size":"3000"},"b":{"size":"100000"}`},
		{"absolute end", `"a":{"start":"1M","end":"128M"},"b":{"start":"0","end":"400000"}`},
		{"end before start", `"a":{"start":"1M","end":"128M"},"b":{"start":"0","end":"200000"}`},
		{"unaligned start", `"a":{"start":"3500","end":"+10M","priority":1},"b":{"start":"30000","end":"+1M","priority":2},"c":{"size":"100%"}`},
		{"negative ends", `"a":{"size":"10M","priority":1},"b":{"end":"-1000K","priority":2}`},
		{"alignment", `"a":{"size":"1M","alignment":4096,"priority":1},"b":{"size":"100%","alignment":8192}`},
		{"attributes", `"a":{"size":"10M","attributes":[0,2,60]},"b":{"size":"100%"}`},
	} {
		p, err := ParsePlan([]byte(`{"disk":{"d":{"type":"disk","content":{"type":"gpt","partitions":{` + tc.parts + `}}}}}`))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%d", tc.name, size), func(t *testing.T) { t.Parallel(); check(t, &p.Disks[0], size) })
		}
	}
}

// attributes are written by Apply (sgdisk reads them back) and checked by
// Verify: a disk without them is a difference.
func TestAttributesAppliedAndVerified(t *testing.T) {
	slow(t)
	need(t, "sgdisk")
	plan := func(attrs string) *DiskoPlan {
		p, err := ParsePlan([]byte(`{"disk":{"d":{"type":"disk","content":{"type":"gpt","partitions":{
			"a":{"size":"10M","attributes":` + attrs + `,"content":{"type":"filesystem","format":"vfat","mountpoint":"/boot"}},
			"b":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}}}}}}`))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := plan("[0,2]")
	img := sparse(t, 64<<20)
	if _, err := p.Apply(t.Context(), map[string]string{"d": img}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-i", "1", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Attribute flags: 0000000000000005") {
		t.Fatalf("sgdisk -i 1: %v\n%s", err, out)
	}
	if diff, err := p.Verify(t.Context(), map[string]string{"d": img}); err != nil || len(diff) != 0 {
		t.Fatalf("verify: %v %v", diff, err)
	}
	diff, err := plan("[0,2,60]").Verify(t.Context(), map[string]string{"d": img})
	if err != nil || len(diff) != 1 || diff[0].Field != "attributes" {
		t.Fatalf("a missing attribute bit is not a difference: %v %v", diff, err)
	}
	if _, err := ParsePlan([]byte(`{"disk":{"d":{"type":"disk","content":{"type":"gpt","partitions":{"a":{"size":"1M","attributes":[64]}}}}}}`)); err == nil || !strings.Contains(err.Error(), "bits 0–63") {
		t.Fatalf("attribute 64: %v", err)
	}
}

// What Apply cannot create, Verify still recognises on a disk real disko
// made: the LUKS partition of the luks-lvm sample is checked by its header
// (blkid agrees), a wiped header is a difference, and Apply refuses the
// plan naming the content.
func TestVerifyRecognisesWhatApplyCannotCreate(t *testing.T) {
	slow(t)
	p := loadSample(t, "luks-lvm.json")
	if _, err := p.Apply(t.Context(), map[string]string{"main": sparse(t, 1<<30)}); err == nil || !strings.Contains(err.Error(), "unsupported: luks at disk.main.content.partitions.luks.content") {
		t.Fatalf("Apply of a LUKS plan: %v", err)
	}
	// Make the disk as disko would: the plan's GPT and ESP, then a LUKS1
	// header where cryptsetup writes it.
	q := loadSample(t, "luks-lvm.json")
	q.Unsupported = nil
	q.Disks[0].Partitions[1].Content = nil
	img := sparse(t, 1<<30)
	applied, err := q.Apply(t.Context(), map[string]string{"main": img})
	if err != nil {
		t.Fatal(err)
	}
	luks := applied[1].Extent
	hdr := make([]byte, 4096)
	copy(hdr, "LUKS\xba\xbe\x00\x01aes")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(hdr, luks.Offset()); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("blkid"); err == nil {
		out, _ := exec.Command("blkid", "-p", "-O", strconv.FormatInt(luks.Offset(), 10), "-o", "value", "-s", "TYPE", img).Output()
		if strings.TrimSpace(string(out)) != "crypto_LUKS" {
			t.Fatalf("blkid at the LUKS partition: %q", out)
		}
	}
	if diff, err := p.Verify(t.Context(), map[string]string{"main": img}); err != nil || len(diff) != 0 {
		t.Fatalf("verify: %v %v", diff, err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), luks.Offset()); err != nil {
		t.Fatal(err)
	}
	diff, err := p.Verify(t.Context(), map[string]string{"main": img})
	if err != nil || len(diff) != 1 || diff[0].Field != "filesystem" || diff[0].Expected != "crypto_LUKS" {
		t.Fatalf("a wiped LUKS header: %v %v", diff, err)
	}
}
