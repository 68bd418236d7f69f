package bootstrap

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
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

func alignUp(x uint64) uint64 { return alignUpTo(x, Alignment) }

func alignUpTo(x, a uint64) uint64   { return (x + a - 1) / a * a }
func alignDownTo(x, a uint64) uint64 { return x / a * a }

// sectorsOf parses a size as sgdisk does: a bare number is a count of
// sectors; K, M, G, T and P (binary) suffixes are sizes.
func sectorsOf(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return strconv.ParseUint(s, 10, 64)
	}
	if n := len(s); n > 1 && (s[n-1] == 'P' || s[n-1] == 'p') {
		v, err := ultracloud.ParseSize(s[:n-1] + "T")
		if err != nil || v > math.MaxInt64/1024 {
			return 0, fmt.Errorf("size %q: want a number of sectors or a size with a K/M/G/T/P suffix", s)
		}
		return uint64(v) * 1024 / SectorSize, nil
	}
	v, err := ultracloud.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a number of sectors or a size with a K/M/G/T/P suffix", s)
	}
	return uint64(v) / SectorSize, nil
}

// Layout places the disk's partitions on a disk of diskBytes exactly as
// `sgdisk --align-end [--set-alignment=A] --new=INDEX:START:END` does when
// disko runs it in creation order (measured against sgdisk 1.0.9):
//
//   - start "0" is the first aligned sector of the largest free block; an
//     explicit start is aligned down (never below that block's first
//     aligned sector);
//   - end "+N" is the requested start + N − 1 (not aligned); "-N" is N
//     sectors before the free block's end aligned down; "-0" and "+0" are
//     that aligned end; a plain value is the inclusive last sector;
//   - a bare number is sectors, K/M/G/T/P are binary sizes; the alignment is
//     the partition's `alignment` (sectors), else 2048.
func (d *Disk) Layout(diskBytes int64) ([]Extent, error) {
	if diskBytes < (Alignment+2*gptSectors+2)*SectorSize {
		return nil, fmt.Errorf("%w: disk %q: %d bytes cannot hold a GPT and one aligned partition", ErrPlan, d.Name, diskBytes)
	}
	first, last := usable(diskBytes)
	var placed []Extent
	for _, p := range d.Partitions {
		align := uint64(Alignment)
		if p.Alignment > 0 {
			align = uint64(p.Alignment)
		}
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
		start, end := p.Start, p.End
		if end == "" {
			if p.Size == "100%" {
				end = "-0"
			} else {
				end = "+" + p.Size
			}
		}
		var firstLBA, reqStart uint64
		if start == "" || start == "0" {
			firstLBA = alignUpTo(big.first, align)
			reqStart = firstLBA
		} else {
			s, err := sectorsOf(strings.TrimPrefix(start, "+"))
			if err != nil {
				return nil, fmt.Errorf("%w: %s.start: %v", ErrPlan, p.Path, err)
			}
			reqStart = s
			var seg *segment
			for i := range segs {
				if s >= segs[i].first && s <= segs[i].last {
					seg = &segs[i]
				}
			}
			if seg == nil {
				for _, e := range placed {
					if s >= e.FirstLBA && s <= e.LastLBA {
						return nil, fmt.Errorf("%w: %s.start: sector %d overlaps partition %d %q (%d–%d)", ErrPlan, p.Path, s, e.Index, e.Name, e.FirstLBA, e.LastLBA)
					}
				}
				return nil, fmt.Errorf("%w: %s.start: sector %d is outside the usable sectors %d–%d of a %s disk", ErrPlan, p.Path, s, first, last, ultracloud.Size(diskBytes))
			}
			firstLBA = max(alignDownTo(s, align), alignUpTo(seg.first, align))
		}
		// The block the start falls into bounds "-" ends.
		blockEnd := last
		for _, s := range segs {
			if firstLBA >= s.first && firstLBA <= s.last {
				blockEnd = s.last
			}
		}
		alignedEnd := alignDownTo(blockEnd+1, align) - 1
		var lastLBA uint64
		switch {
		case end == "+0" || end == "-0":
			lastLBA = alignedEnd
		case strings.HasPrefix(end, "+"):
			n, err := sectorsOf(end[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: %s.size: %v", ErrPlan, p.Path, err)
			}
			lastLBA = reqStart + n - 1
		case strings.HasPrefix(end, "-"):
			n, err := sectorsOf(end[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: %s.end: %v", ErrPlan, p.Path, err)
			}
			if n > alignedEnd {
				return nil, fmt.Errorf("%w: %s.end %q is before the disk start", ErrPlan, p.Path, end)
			}
			lastLBA = alignedEnd - n
		default:
			n, err := sectorsOf(end)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.end: %v", ErrPlan, p.Path, err)
			}
			lastLBA = n
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
