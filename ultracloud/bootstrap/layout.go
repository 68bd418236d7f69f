package bootstrap

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/photoncloud/testkit/ultracloud"
)

// Sector geometry of the GPTs this package writes (as sgdisk's defaults).
const (
	SectorSize = 512
	// Alignment is sgdisk's default partition alignment, in sectors (1 MiB).
	Alignment = 2048
	// gptSectors is the primary header + 128 entries × 128 bytes.
	gptSectors = 1 + 32
)

// Extent is where a partition lands on a disk of a given size.
type Extent struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Label    string `json:"label"`
	TypeGUID string `json:"typeGUID"`
	// FirstLBA and LastLBA are inclusive, in 512-byte sectors.
	FirstLBA uint64 `json:"firstLBA"`
	LastLBA  uint64 `json:"lastLBA"`
}

// Bytes is the extent's size in bytes.
func (e Extent) Bytes() int64 { return int64(e.LastLBA-e.FirstLBA+1) * SectorSize }

// Offset is the extent's start in bytes.
func (e Extent) Offset() int64 { return int64(e.FirstLBA) * SectorSize }

// usable returns the first and last usable LBA of a disk.
func usable(diskBytes int64) (first, last uint64) {
	sectors := uint64(diskBytes / SectorSize)
	return gptSectors + 1, sectors - gptSectors - 1
}

type segment struct{ first, last uint64 }

// freeSegments lists the free ranges of [first, last] around placed extents.
func freeSegments(first, last uint64, placed []Extent) []segment {
	sorted := slices.Clone(placed)
	slices.SortFunc(sorted, func(a, b Extent) int { return cmp.Compare(a.FirstLBA, b.FirstLBA) })
	var segs []segment
	cur := first
	for _, e := range sorted {
		if e.FirstLBA > cur {
			segs = append(segs, segment{cur, e.FirstLBA - 1})
		}
		cur = max(cur, e.LastLBA+1)
	}
	if cur <= last {
		segs = append(segs, segment{cur, last})
	}
	return segs
}

func alignUp(x uint64) uint64 { return (x + Alignment - 1) / Alignment * Alignment }

// sectorsOf parses a size expression into sectors (binary units, as sgdisk).
func sectorsOf(s string) (uint64, error) {
	v, err := ultracloud.ParseSize(s)
	if err != nil {
		return 0, err
	}
	return uint64(v) / SectorSize, nil
}

// Layout places the disk's partitions on a disk of diskBytes exactly as
// `sgdisk --align-end --new=INDEX:START:END` does when disko runs it in
// creation order: starts aligned to 2048 sectors, "0" meaning the start of
// the largest free block, "+size" relative to the start, "-0" the end of
// that block, "-size" relative to it, plain sizes absolute; ends aligned
// down so the next partition starts aligned.
func (d *Disk) Layout(diskBytes int64) ([]Extent, error) {
	if diskBytes < (Alignment+2*gptSectors+2)*SectorSize {
		return nil, fmt.Errorf("%w: disk %q: %d bytes cannot hold a GPT and one aligned partition", ErrPlan, d.Name, diskBytes)
	}
	first, last := usable(diskBytes)
	var placed []Extent
	for _, p := range d.Partitions {
		segs := freeSegments(first, last, placed)
		if len(segs) == 0 {
			return nil, fmt.Errorf("%w: %s: no free space left on a %s disk", ErrPlan, p.Path, ultracloud.Size(diskBytes))
		}
		big := segs[0]
		for _, s := range segs[1:] {
			if s.last-s.first > big.last-big.first {
				big = s
			}
		}
		start := p.Start
		end := p.End
		if end == "" {
			if p.Size == "100%" {
				end = "-0"
			} else {
				end = "+" + p.Size
			}
		}
		var firstLBA uint64
		switch {
		case start == "" || start == "0":
			firstLBA = alignUp(big.first)
		default:
			s, err := sectorsOf(strings.TrimPrefix(start, "+"))
			if err != nil {
				return nil, fmt.Errorf("%w: %s.start: %v", ErrPlan, p.Path, err)
			}
			firstLBA = alignUp(s)
		}
		// The block the start falls into bounds "-" ends.
		blockEnd := last
		for _, s := range segs {
			if firstLBA >= s.first && firstLBA <= s.last {
				blockEnd = s.last
			}
		}
		var lastLBA uint64
		switch {
		case strings.HasPrefix(end, "+"):
			n, err := sectorsOf(end[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: %s.size: %v", ErrPlan, p.Path, err)
			}
			if n == 0 {
				return nil, fmt.Errorf("%w: %s.size: zero", ErrPlan, p.Path)
			}
			lastLBA = firstLBA + n - 1
		case strings.HasPrefix(end, "-"):
			n, err := sectorsOf(end[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: %s.end: %v", ErrPlan, p.Path, err)
			}
			if n > blockEnd {
				return nil, fmt.Errorf("%w: %s.end %q is before the disk start", ErrPlan, p.Path, end)
			}
			lastLBA = blockEnd - n
		default:
			n, err := sectorsOf(end)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.end: %v", ErrPlan, p.Path, err)
			}
			lastLBA = n - 1
		}
		// --align-end: end just before an aligned boundary, never later
		// than asked.
		if aligned := (lastLBA+1)/Alignment*Alignment - 1; aligned > firstLBA {
			lastLBA = aligned
		}
		if lastLBA > last || firstLBA > last {
			return nil, fmt.Errorf("%w: %s: ends at sector %d but the %s disk's last usable sector is %d (disk too small)",
				ErrPlan, p.Path, lastLBA, ultracloud.Size(diskBytes), last)
		}
		if lastLBA < firstLBA {
			return nil, fmt.Errorf("%w: %s: ends (%d) before it starts (%d)", ErrPlan, p.Path, lastLBA, firstLBA)
		}
		for _, e := range placed {
			if firstLBA <= e.LastLBA && lastLBA >= e.FirstLBA {
				return nil, fmt.Errorf("%w: %s (sectors %d–%d) overlaps partition %d %q (%d–%d)",
					ErrPlan, p.Path, firstLBA, lastLBA, e.Index, e.Name, e.FirstLBA, e.LastLBA)
			}
		}
		placed = append(placed, Extent{Index: p.Index, Name: p.Name, Label: p.Label, TypeGUID: p.TypeGUID, FirstLBA: firstLBA, LastLBA: lastLBA})
	}
	return placed, nil
}

// MinBytes is the smallest disk the plan fits on: every fixed-size
// partition aligned, plus 1 MiB for each 100% partition, plus the GPTs.
func (d *Disk) MinBytes() int64 {
	sectors := uint64(Alignment) // first partition starts at 1 MiB
	for _, p := range d.Partitions {
		n := uint64(Alignment)
		if p.Size != "100%" && p.Size != "" {
			if s, err := sectorsOf(p.Size); err == nil {
				n = alignUp(s)
			}
		}
		sectors += n
	}
	return int64(sectors+gptSectors+1) * SectorSize
}
