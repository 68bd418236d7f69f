package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"github.com/photoncloud/testkit/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

func loadPlan(t testing.TB, name string) *DiskoPlan {
	t.Helper()
	return parsePlanFile(t, filepath.Join("testdata/disko", name))
}

// parsePlanFile parses the plan in a file, failing the test naming it.
func parsePlanFile(t testing.TB, path string) *DiskoPlan {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePlan(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

var applicableSamples = []string{"esp-root.json", "esp-swap-root.json", "two-disks.json", "evaluated.json"}

func TestParseSamples(t *testing.T) {
	p := loadPlan(t, "esp-swap-root.json")
	d := p.Disks[0]
	if d.Name != "main" || d.ImageSize != 2*ultracloud.GiB || len(d.Partitions) != 3 {
		t.Fatalf("%+v", d)
	}
	// priority 1 (ESP), then 1000 (swap), then 9001 (100% root).
	var order []string
	for _, part := range d.Partitions {
		order = append(order, fmt.Sprintf("%d:%s:%s", part.Index, part.Name, part.Label))
	}
	if got := strings.Join(order, " "); got != "1:ESP:disk-main-ESP 2:swap:disk-main-swap 3:root:disk-main-root" {
		t.Fatal(got)
	}
	if d.Partitions[0].Content.Label() != "ESP" || d.Partitions[2].Content.Label() != "nixos" {
		t.Fatal("labels from extraArgs")
	}
	// BIOS boot partitions go first by default priority (100).
	two := loadPlan(t, "two-disks.json")
	if two.Disks[0].Partitions[0].Name != "boot" || two.Disks[0].Partitions[1].Name != "ESP" {
		t.Fatalf("%+v", two.Disks[0].Partitions)
	}
	ev := loadPlan(t, "evaluated.json")
	if ev.Disks[0].Partitions[0].UUID == "" || ev.Disks[0].Partitions[1].End != "-0" {
		t.Fatalf("%+v", ev.Disks[0].Partitions)
	}
	for _, s := range applicableSamples {
		if err := loadPlan(t, s).Validate(true); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestUnsupportedIsReported(t *testing.T) {
	p := loadPlan(t, "unsupported.json")
	err := p.Validate(false)
	for _, want := range []string{
		"unsupported: luks at disk.main.content.partitions.luks.content",
		"unsupported: table at disk.old.content",
		"unsupported: lvm_vg at lvm_vg.pool",
		"unsupported: zpool at zpool.zroot",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if _, err := p.Apply(context.Background(), map[string]string{"main": "/nonexistent", "old": "/nonexistent"}); !errors.Is(err, ErrPlan) {
		t.Fatalf("Apply of an unsupported plan: %v", err)
	}
}

func TestValidateNamesEachProblem(t *testing.T) {
	base := `{"disk":{"d":{"type":"disk","imageSize":"%s","content":{"type":"gpt","partitions":{%s}}}}}`
	cases := []struct {
		name, size, parts, want string
	}{
		{"bad size", "1G", `"a":{"size":"12Q"}`, "disk.d.content.partitions.a.size"},
		{"two 100%", "1G", `"a":{"size":"100%"},"b":{"size":"100%"}`, "2 partitions with size 100%"},
		{"100% not last", "1G", `"a":{"size":"100%","priority":1},"b":{"size":"10M"}`, "100% must be the last"},
		{"unknown type", "1G", `"a":{"size":"10M","type":"ZZ99"}`, `unknown type "ZZ99"`},
		{"long label", "1G", `"a":{"size":"10M","label":"this-label-is-far-too-long-for-a-gpt-entry"}`, "UTF-16 units"},
		{"dup mount", "1G", `"a":{"size":"10M","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}},"b":{"size":"10M","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}`, `"/" is also mounted`},
		{"overlap", "1G", `"a":{"size":"10M","start":"1M","end":"20M"},"b":{"size":"10M","start":"10M","end":"30M"}`, "overlaps"},
		{"bad format", "1G", `"a":{"size":"10M","content":{"type":"filesystem","format":"xfs"}}`, `"xfs" cannot be created`},
		{"no esp", "1G", `"a":{"size":"10M","content":{"type":"filesystem","format":"ext4"}}`, "no ESP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePlan([]byte(fmt.Sprintf(base, c.size, c.parts)))
			if err != nil {
				t.Fatal(err)
			}
			err = p.Validate(true)
			if !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q in %v", c.want, err)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"disk":{"d":{"content":{"type":"nosuch"}}}}`, `{"disk":{"d":{"content":{}}}}`} {
		if _, err := ParsePlan([]byte(bad)); !errors.Is(err, ErrPlan) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func sparse(t testing.TB, size int64) string { return testenv.Sparse(t, size) }

// slow skips tests that only exercise external tools and big images under
// -short (the race pass); the full run keeps them.
func slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: sgdisk, e2fsck and large images; run without -short")
	}
}

func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
}

// sgdiskCommands are the commands disko runs for a disk's partitions.
func sgdiskCommands(d *Disk) [][]string {
	var out [][]string
	for _, p := range d.Partitions {
		start, end := p.Start, p.End
		if start == "" {
			start = "0"
		}
		if end == "" {
			end = "+" + p.Size
			if p.Size == "100%" {
				end = "-0"
			}
		}
		args := []string{"--align-end"}
		if p.Alignment > 0 {
			args = append(args, fmt.Sprintf("--set-alignment=%d", p.Alignment))
		}
		args = append(args, fmt.Sprintf("--new=%d:%s:%s", p.Index, start, end),
			fmt.Sprintf("--change-name=%d:%s", p.Index, p.Label), fmt.Sprintf("--typecode=%d:%s", p.Index, p.Type))
		for _, a := range p.Attributes {
			args = append(args, fmt.Sprintf("--attributes=%d:set:%d", p.Index, a))
		}
		out = append(out, args)
	}
	return out
}

var sgdiskPart = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s`)

// sgdiskTable is `sgdisk -p`'s partitions of img: index → first, last sector.
func sgdiskTable(img string) map[int][2]uint64 {
	out, _ := exec.Command("sgdisk", "-p", img).Output()
	got := map[int][2]uint64{}
	for _, m := range sgdiskPart.FindAllStringSubmatch(string(out), -1) {
		i, _ := strconv.Atoi(m[1])
		a, _ := strconv.ParseUint(m[2], 10, 64)
		b, _ := strconv.ParseUint(m[3], 10, 64)
		got[i] = [2]uint64{a, b}
	}
	return got
}

// sameAsSgdisk fails t for each extent sgdisk placed elsewhere.
func sameAsSgdisk(t *testing.T, ext []Extent, got map[int][2]uint64) {
	t.Helper()
	for _, e := range ext {
		if g := got[e.Index]; g != [2]uint64{e.FirstLBA, e.LastLBA} {
			t.Errorf("partition %d %s: ours %d–%d, sgdisk %d–%d", e.Index, e.Name, e.FirstLBA, e.LastLBA, g[0], g[1])
		}
	}
}

// Layout agrees with sgdisk on every sample, for several disk sizes.
func TestLayoutMatchesSgdisk(t *testing.T) {
	slow(t)
	need(t, "sgdisk")
	for _, s := range applicableSamples {
		for _, size := range []int64{1 << 30, 3<<30 + 12345*512, 20 << 30} {
			p := loadPlan(t, s)
			for _, d := range p.Disks {
				t.Run(fmt.Sprintf("%s/%s/%d", s, d.Name, size), func(t *testing.T) {
					ext, err := d.Layout(size)
					if err != nil {
						t.Fatal(err)
					}
					img := sparse(t, size)
					for _, args := range sgdiskCommands(&d) {
						if out, err := exec.Command("sgdisk", append(args, img)...).CombinedOutput(); err != nil {
							t.Fatalf("sgdisk %v: %v %s", args, err, out)
						}
					}
					sameAsSgdisk(t, ext, sgdiskTable(img))
				})
			}
		}
	}
}

func applySample(t testing.TB, name string, size int64) (*DiskoPlan, map[string]string, []Applied) {
	t.Helper()
	p := loadPlan(t, name)
	targets := map[string]string{}
	for _, d := range p.Disks {
		targets[d.Name] = sparse(t, size)
	}
	applied, err := p.Apply(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	return p, targets, applied
}

func TestApplyVerifyRoundTrip(t *testing.T) {
	slow(t)
	need(t, "sgdisk", "e2fsck")
	for _, s := range applicableSamples {
		t.Run(s, func(t *testing.T) {
			p, targets, applied := applySample(t, s, 1<<30)
			diff, err := p.Verify(context.Background(), targets)
			if err != nil {
				t.Fatal(err)
			}
			if len(diff) != 0 {
				t.Fatalf("fresh apply differs:\n%s", diff)
			}
			if Mounts(applied)["/"].Format != "ext4" {
				t.Fatalf("mounts %+v", Mounts(applied))
			}
			for _, img := range targets {
				if out, err := exec.Command("sgdisk", "-v", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
					t.Fatalf("sgdisk -v: %v\n%s", err, out)
				}
			}
			for _, a := range applied {
				if a.Format != "ext4" {
					continue
				}
				// e2fsck on the partition's bytes, through a loop-free offset copy.
				part := extractPartition(t, a)
				if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
					t.Fatalf("e2fsck -fn %s partition %d: %v\n%s", a.Disk, a.Index, err, out)
				}
			}
		})
	}
}

// extractPartition copies a partition into its own file for tools that
// take a filesystem image.
func extractPartition(t testing.TB, a Applied) string {
	t.Helper()
	src, err := os.Open(a.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(t.TempDir(), fmt.Sprintf("part%d.img", a.Index))
	dst, _ := os.Create(p)
	defer dst.Close()
	buf := make([]byte, 8<<20)
	for off := int64(0); off < a.Extent.Bytes(); {
		n, err := src.ReadAt(buf[:min(int64(len(buf)), a.Extent.Bytes()-off)], a.Extent.Offset()+off)
		if n > 0 {
			allZero := true
			for _, b := range buf[:n] {
				if b != 0 {
					allZero = false
					break
				}
			}
			if !allZero {
				dst.WriteAt(buf[:n], off)
			}
			off += int64(n)
		}
		if err != nil {
			break
		}
	}
	dst.Truncate(a.Extent.Bytes())
	return p
}

// Verify names each injected difference.
func TestVerifyDetectsDifferences(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*DiskoPlan)
		want   string
	}{
		{"wrong type", func(p *DiskoPlan) {
			p.Disks[0].Partitions[1].TypeGUID = typeCodes["8302"]
			p.Disks[0].Partitions[1].Type = "8302"
		}, "main/swap: type"},
		{"wrong size", func(p *DiskoPlan) { p.Disks[0].Partitions[0].Size = "300M" }, "main/ESP: size: expected 314572800 bytes, found 268435456 bytes"},
		{"missing partition", func(p *DiskoPlan) {
			p.Disks[0].Partitions = append(p.Disks[0].Partitions[:2:2], Partition{Name: "extra", Index: 4, Size: "1M", Type: "8300", TypeGUID: typeCodes["8300"], Label: "x", Path: "x"}, p.Disks[0].Partitions[2])
		}, "partition count: expected 4, found 3"},
		{"wrong fs", func(p *DiskoPlan) { p.Disks[0].Partitions[2].Content.Format = "vfat" }, "main/root: filesystem: expected vfat, found ext4"},
		{"wrong label", func(p *DiskoPlan) { p.Disks[0].Partitions[2].Content.ExtraArgs = []string{"-L", "other"} }, `filesystem label: expected "other", found "nixos"`},
		{"wrong name", func(p *DiskoPlan) { p.Disks[0].Partitions[0].Label = "EFI" }, `main/ESP: name: expected "EFI", found "disk-main-ESP"`},
	}
	_, targets, _ := applySample(t, "esp-swap-root.json", 1<<30)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := loadPlan(t, "esp-swap-root.json")
			c.mutate(p)
			diff, err := p.Verify(context.Background(), targets)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(diff.String(), c.want) {
				t.Fatalf("want %q in diff:\n%s", c.want, diff)
			}
		})
	}
	// A blank disk has no table.
	p := loadPlan(t, "esp-root.json")
	diff, _ := p.Verify(context.Background(), map[string]string{"main": sparse(t, 1<<30)})
	if len(diff) != 1 || diff[0].Field != "partition table" {
		t.Fatalf("blank disk: %s", diff)
	}
}

func TestApplyRefusesSmallTarget(t *testing.T) {
	p := loadPlan(t, "esp-swap-root.json")
	img := sparse(t, 200<<20)
	before, _ := os.ReadFile(img)
	_, err := p.Apply(context.Background(), map[string]string{"main": img})
	if !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), "needs at least") {
		t.Fatalf("%v", err)
	}
	after, _ := os.ReadFile(img)
	if string(before) != string(after) {
		t.Fatal("refused target was modified")
	}
}

func FuzzParsePlan(f *testing.F) {
	for _, s := range append(applicableSamples, "unsupported.json") {
		data, _ := os.ReadFile(filepath.Join("testdata/disko", s))
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data)
		if err != nil {
			return
		}
		if p.Validate(false) == nil {
			for _, d := range p.Disks {
				d.Layout(8 << 30)
			}
		}
	})
}
