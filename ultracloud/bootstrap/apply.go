package bootstrap

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/photoncloud/testkit/ultracloud/image"
)

// Applied is a partition Apply created, for an installer to populate.
type Applied struct {
	Disk       string `json:"disk"`
	Target     string `json:"target"`
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Format     string `json:"format,omitempty"` // vfat, ext4, swap, or ""
	Label      string `json:"label,omitempty"`
	Mountpoint string `json:"mountpoint,omitempty"`
	Extent     Extent `json:"extent"`
}

// Mounts maps each mountpoint to its partition.
func Mounts(parts []Applied) map[string]Applied {
	m := map[string]Applied{}
	for _, p := range parts {
		if p.Mountpoint != "" {
			m[p.Mountpoint] = p
		}
	}
	return m
}

// targetSize returns the size of a raw image file or block device.
func targetSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// Apply writes the plan onto its disks: targets maps each disk name of the
// plan to a raw image file or block device. Each gets a GPT laid out by
// Layout, then its filesystems (vfat, ext4) and swap headers. A target
// smaller than the plan needs is refused before anything is written, and so
// is an invalid plan.
func (p *DiskoPlan) Apply(ctx context.Context, targets map[string]string) ([]Applied, error) {
	if err := p.Validate(false); err != nil {
		return nil, err
	}
	type job struct {
		d       *Disk
		target  string
		extents []Extent
	}
	var jobs []job
	for i := range p.Disks {
		d := &p.Disks[i]
		t, ok := targets[d.Name]
		if !ok {
			return nil, fmt.Errorf("%w: no target for disk %q (targets: %v)", ErrPlan, d.Name, keys(targets))
		}
		size, err := targetSize(t)
		if err != nil {
			return nil, fmt.Errorf("%w: target %s of disk %q: %v", ErrPlan, t, d.Name, err)
		}
		if min := d.MinBytes(); size < min {
			return nil, fmt.Errorf("%w: target %s of disk %q has %d bytes; the plan needs at least %d", ErrPlan, t, d.Name, size, min)
		}
		ext, err := d.Layout(size)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", t, err)
		}
		jobs = append(jobs, job{d, t, ext})
	}
	var out []Applied
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		parts, err := applyDisk(j.d, j.target, j.extents)
		if err != nil {
			return out, fmt.Errorf("apply disk %q to %s: %w", j.d.Name, j.target, err)
		}
		out = append(out, parts...)
	}
	return out, nil
}

func keys(m map[string]string) []string { return sortedKeys(m) }

// zapGPT clears the primary and backup GPT headers of target, as disko's
// `sgdisk --zap-all` does before partitioning: whatever an old (or hostile)
// table claims is never parsed.
func zapGPT(target string) error {
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	zero := make([]byte, SectorSize)
	for _, off := range []int64{SectorSize, size - SectorSize} {
		if off >= SectorSize {
			if _, err := f.WriteAt(zero, off); err != nil {
				return err
			}
		}
	}
	return f.Sync()
}

func applyDisk(d *Disk, target string, extents []Extent) ([]Applied, error) {
	if err := zapGPT(target); err != nil {
		return nil, fmt.Errorf("clear the old partition table: %w", err)
	}
	// go-diskfs' partition and filesystem packages directly (its diskfs
	// and disk packages would link the ISO code into the guest installer).
	f, err := os.OpenFile(target, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		f, err = os.OpenFile(target, os.O_RDWR, 0) // O_EXCL is for block devices only
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	b := file.New(f, false)
	w, err := b.Writable()
	if err != nil {
		return nil, err
	}
	table := &gpt.Table{LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize, ProtectiveMBR: true}
	for i, e := range extents {
		part := d.Partitions[i]
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: e.Index, Start: e.FirstLBA, End: e.LastLBA, Size: uint64(e.Bytes()),
			Type: gpt.Type(part.TypeGUID), Name: part.Label, GUID: strings.ToUpper(part.UUID),
			Attributes: part.AttributeBits(),
		})
	}
	if err := table.Write(w, size); err != nil {
		return nil, fmt.Errorf("write GPT: %w", err)
	}
	var out []Applied
	for i, e := range extents {
		part := d.Partitions[i]
		a := Applied{Disk: d.Name, Target: target, Index: e.Index, Name: part.Name, Extent: e}
		if c := part.Content; c != nil {
			a.Mountpoint, a.Label = c.Mountpoint, c.Label()
			switch {
			case c.Type == "swap":
				a.Format = image.FSSwap
				if err := writeSwap(target, e); err != nil {
					return nil, err
				}
			case c.Type == "filesystem" && c.Format == "vfat":
				a.Format = image.FSVfat
				if _, err := fat32.Create(b, e.Bytes(), e.Offset(), SectorSize, a.Label, true); err != nil {
					return nil, fmt.Errorf("vfat on partition %d: %w", e.Index, err)
				}
			case c.Type == "filesystem" && c.Format == "ext4":
				a.Format = image.FSExt4
				// metadata_csum: go-diskfs checks inode checksums whether or not
				// the feature is set, and Linux maintains them only when it is,
				// so without it the harness cannot read back what the guest wrote.
				params := &ext4.Params{VolumeName: a.Label, Features: []ext4.FeatureOpt{ext4.WithFeatureMetadataChecksums(true)}}
				if _, err := ext4.Create(b, e.Bytes(), e.Offset(), SectorSize, params); err != nil {
					return nil, fmt.Errorf("ext4 on partition %d: %w", e.Index, err)
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func writeSwap(target string, e Extent) error {
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = image.WriteSwapHeader(f, e.Offset(), e.Bytes(), "")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("swap on partition %d: %w", e.Index, err)
	}
	return nil
}
