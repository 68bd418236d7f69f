package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
)

// ErrBadTable: a partition table whose header or entries cannot be
// trusted (bad CRC, sizes out of bounds, partitions outside the disk or
// overlapping). Nothing is handed to go-diskfs then: it allocates what a
// header claims before checking it.
var ErrBadTable = errors.New("bad partition table")

// GPT bounds the checks enforce (the UEFI spec's, with a generous cap on
// the entry array: 128 entries of 128 bytes is the norm).
const (
	gptSector       = 512
	maxGPTArray     = 1 << 20 // bytes of partition entries
	maxGPTEntrySize = 4096
)

// CheckGPT reads the primary GPT header of the image r (size bytes,
// 512-byte sectors) and its partition entries, and returns nil when they
// are sound or when there is no GPT signature at all; otherwise an error
// wrapping ErrBadTable that names every problem. It reads at most the
// header and 1 MiB of entries, whatever the header claims.
func CheckGPT(r io.ReaderAt, size int64) error {
	if size < 2*gptSector {
		return nil
	}
	hdr := make([]byte, gptSector)
	if _, err := r.ReadAt(hdr, gptSector); err != nil {
		return fmt.Errorf("read GPT header: %w", err)
	}
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return nil
	}
	le := binary.LittleEndian
	sectors := uint64(size) / gptSector
	var p []string
	hsize := le.Uint32(hdr[12:])
	if hsize < 92 || hsize > gptSector {
		return fmt.Errorf("%w: GPT header size %d (must be 92–512)", ErrBadTable, hsize)
	}
	crc := le.Uint32(hdr[16:])
	check := slices.Clone(hdr[:hsize])
	copy(check[16:20], []byte{0, 0, 0, 0})
	if got := crc32.ChecksumIEEE(check); got != crc {
		p = append(p, fmt.Sprintf("header CRC32 %08x, computed %08x", crc, got))
	}
	if my := le.Uint64(hdr[24:]); my != 1 {
		p = append(p, fmt.Sprintf("header says it is at LBA %d, not 1", my))
	}
	first, last := le.Uint64(hdr[40:]), le.Uint64(hdr[48:])
	if first > last || last >= sectors {
		p = append(p, fmt.Sprintf("usable LBAs %d–%d outside the disk's %d sectors", first, last, sectors))
	}
	arrayLBA, count, esize := le.Uint64(hdr[72:]), uint64(le.Uint32(hdr[80:])), uint64(le.Uint32(hdr[84:]))
	if esize < 128 || esize > maxGPTEntrySize || esize&(esize-1) != 0 {
		p = append(p, fmt.Sprintf("partition entry size %d (must be 128×2ⁿ, at most %d)", esize, maxGPTEntrySize))
	} else if count*esize > maxGPTArray {
		p = append(p, fmt.Sprintf("%d entries of %d bytes = %d bytes of entries (at most %d)", count, esize, count*esize, maxGPTArray))
	} else if arrayLBA >= sectors || arrayLBA*gptSector+count*esize > uint64(size) {
		p = append(p, fmt.Sprintf("partition entries at LBA %d (%d bytes) lie outside the %d-byte disk", arrayLBA, count*esize, size))
	}
	if len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrBadTable, strings.Join(p, "; "))
	}
	array := make([]byte, count*esize)
	if _, err := r.ReadAt(array, int64(arrayLBA*gptSector)); err != nil {
		return fmt.Errorf("read GPT entries: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(array), le.Uint32(hdr[88:]); got != want {
		p = append(p, fmt.Sprintf("partition entries CRC32 %08x, computed %08x", want, got))
	}
	type span struct {
		index      int
		start, end uint64
	}
	var spans []span
	for i := uint64(0); i < count; i++ {
		e := array[i*esize : (i+1)*esize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		s := span{int(i) + 1, le.Uint64(e[32:]), le.Uint64(e[40:])}
		switch {
		case s.start > s.end:
			p = append(p, fmt.Sprintf("partition %d starts at LBA %d after its end %d", s.index, s.start, s.end))
		case s.start < first || s.end > last:
			p = append(p, fmt.Sprintf("partition %d spans LBAs %d–%d outside the usable %d–%d", s.index, s.start, s.end, first, last))
		default:
			spans = append(spans, s)
		}
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.start < b.start {
			return -1
		}
		if a.start > b.start {
			return 1
		}
		return 0
	})
	for i := 1; i < len(spans); i++ {
		if a, b := spans[i-1], spans[i]; b.start <= a.end {
			p = append(p, fmt.Sprintf("partitions %d (LBAs %d–%d) and %d (LBAs %d–%d) overlap", a.index, a.start, a.end, b.index, b.start, b.end))
		}
	}
	if len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrBadTable, strings.Join(p, "; "))
	}
	return nil
}
