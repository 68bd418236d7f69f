package bootstrap

import (
	"context"
	"fmt"
	"strings"

	"github.com/photoncloud/testkit/ultracloud/image"
)

// Difference is one way an image differs from its plan.
type Difference struct {
	Disk      string `json:"disk"`
	Partition string `json:"partition,omitempty"`
	Field     string `json:"field"`
	Expected  string `json:"expected"`
	Found     string `json:"found"`
}

func (d Difference) String() string {
	where := d.Disk
	if d.Partition != "" {
		where += "/" + d.Partition
	}
	return fmt.Sprintf("%s: %s: expected %s, found %s", where, d.Field, d.Expected, d.Found)
}

// Diff is the result of Verify; empty means the images match the plan.
type Diff []Difference

func (d Diff) String() string {
	if len(d) == 0 {
		return "images match the plan"
	}
	lines := make([]string, len(d))
	for i, x := range d {
		lines[i] = x.String()
	}
	return strings.Join(lines, "\n")
}

// expectedFS is the on-disk signature a partition's content leaves (as
// image.Sniff and blkid name it) and the label to check, "" when the
// content leaves none this package knows. What Apply cannot create (LUKS,
// LVM, md, btrfs, XFS, ZFS) is still recognised, so Verify checks disks
// that real disko made.
func expectedFS(c *Content) (fs, label string) {
	if c == nil {
		return "", ""
	}
	switch c.Type {
	case "swap":
		return image.FSSwap, ""
	case "filesystem":
		switch c.Format {
		case "xfs":
			return image.FSXFS, c.Label()
		case "btrfs":
			return image.FSBtrfs, ""
		}
		return c.Format, c.Label()
	case "luks":
		return image.FSLUKS, ""
	case "lvm_pv":
		return image.FSLVMPV, ""
	case "mdraid":
		return image.FSMDRaid, ""
	case "btrfs":
		return image.FSBtrfs, ""
	case "zfs":
		return image.FSZFS, ""
	}
	return "", ""
}

// Verify reads each disk image in-process and compares it with the plan:
// partition count and order, type GUID, name, start and size (against
// Layout for the image's size), and each partition's filesystem type and
// label or, for what Apply cannot create, its signature (LUKS, LVM PV, md
// member, btrfs, XFS, ZFS). images maps disk names to image files or block
// devices.
func (p *DiskoPlan) Verify(ctx context.Context, images map[string]string) (Diff, error) {
	var diff Diff
	for i := range p.Disks {
		d := &p.Disks[i]
		path, ok := images[d.Name]
		if !ok {
			return nil, fmt.Errorf("%w: no image for disk %q", ErrPlan, d.Name)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := image.OpenDisk(path)
		if err != nil {
			diff = append(diff, Difference{Disk: d.Name, Field: "partition table", Expected: "GPT", Found: err.Error()})
			continue
		}
		want, err := d.Layout(img.Size)
		if err != nil {
			img.Close()
			return nil, err
		}
		diff = append(diff, compareDisk(d, want, img)...)
		img.Close()
	}
	return diff, nil
}

func compareDisk(d *Disk, want []Extent, img *image.Disk) Diff {
	var diff Diff
	add := func(part, field string, exp, got any) {
		diff = append(diff, Difference{Disk: d.Name, Partition: part, Field: field, Expected: fmt.Sprint(exp), Found: fmt.Sprint(got)})
	}
	if len(img.Partitions) != len(want) {
		add("", "partition count", len(want), len(img.Partitions))
	}
	found := map[int]image.DiskPartition{}
	for _, gp := range img.Partitions {
		found[gp.Index] = gp
	}
	for i, e := range want {
		plan := d.Partitions[i]
		gp, ok := found[e.Index]
		if !ok {
			add(plan.Name, "partition", fmt.Sprintf("#%d %q", e.Index, e.Label), "missing")
			continue
		}
		if !strings.EqualFold(gp.TypeGUID, e.TypeGUID) {
			add(plan.Name, "type", e.TypeGUID+" ("+plan.Type+")", gp.TypeGUID)
		}
		if gp.Name != e.Label {
			add(plan.Name, "name", fmt.Sprintf("%q", e.Label), fmt.Sprintf("%q", gp.Name))
		}
		if want := plan.AttributeBits(); gp.Attributes != want {
			add(plan.Name, "attributes", fmt.Sprintf("%#x %v", want, plan.Attributes), fmt.Sprintf("%#x", gp.Attributes))
		}
		if gp.FirstLBA != e.FirstLBA {
			add(plan.Name, "start sector", e.FirstLBA, gp.FirstLBA)
		}
		if gp.LastLBA-gp.FirstLBA != e.LastLBA-e.FirstLBA {
			add(plan.Name, "size", fmt.Sprintf("%d bytes", e.Bytes()), fmt.Sprintf("%d bytes", int64(gp.LastLBA-gp.FirstLBA+1)*SectorSize))
		}
		wantFS, wantLabel := expectedFS(plan.Content)
		if wantFS != "" && gp.FS.Type != wantFS {
			got := gp.FS.Type
			if got == "" {
				got = "no filesystem"
			}
			add(plan.Name, "filesystem", wantFS, got)
		} else if wantLabel != "" && gp.FS.Label != wantLabel {
			add(plan.Name, "filesystem label", fmt.Sprintf("%q", wantLabel), fmt.Sprintf("%q", gp.FS.Label))
		}
	}
	return diff
}
