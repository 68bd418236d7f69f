package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gptEntry is one partition of a crafted table.
type gptEntry struct{ start, end uint64 }

// craftGPT writes an image of size bytes with a primary GPT whose header
// says count entries of esize bytes, holding parts; the CRCs are right, so
// only the bounds checks can refuse it.
func craftGPT(t testing.TB, size int64, count, esize uint32, parts []gptEntry) string {
	t.Helper()
	img := make([]byte, 34*512)
	h := img[512:1024]
	le := binary.LittleEndian
	copy(h, "EFI PART")
	le.PutUint32(h[8:], 0x00010000)
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], 1)
	le.PutUint64(h[32:], uint64(size/512-1))
	le.PutUint64(h[40:], 34)
	le.PutUint64(h[48:], uint64(size/512-34))
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], count)
	le.PutUint32(h[84:], esize)
	var array []byte
	if uint64(count)*uint64(esize) <= 32*512 {
		array = img[1024 : 1024+int(count)*int(esize)]
		for i, p := range parts {
			e := array[i*int(esize):]
			copy(e[:16], bytes.Repeat([]byte{0xAF}, 16))
			le.PutUint64(e[32:], p.start)
			le.PutUint64(e[40:], p.end)
		}
	}
	le.PutUint32(h[88:], crc32.ChecksumIEEE(array))
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	p := filepath.Join(t.TempDir(), "hostile.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(img)
	f.Truncate(size)
	f.Close()
	return p
}

// Hostile GPT headers are refused with a reason, never handed to go-diskfs
// (which would allocate what they claim: out of memory, makeslice panics).
func TestOpenDiskRefusesHostileGPT(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name         string
		count, esize uint32
		parts        []gptEntry
		want         string
	}{
		{"4 billion entries", 0xFFFFFFFF, 128, nil, "entries of 128 bytes"},
		{"huge entry size", 0xFFFFFFFF, 0xFFFFFFFF, nil, "entry size"},
		{"entry size not a power of two", 128, 200, nil, "entry size"},
		{"end at 2^55", 128, 128, []gptEntry{{2048, 1 << 55}}, "outside the usable"},
		{"end at 2^64-1", 128, 128, []gptEntry{{2048, 1<<64 - 1}}, "outside the usable"},
		{"start at 2^60", 128, 128, []gptEntry{{1 << 60, 1<<60 + 10}}, "outside the usable"},
		{"start after end", 128, 128, []gptEntry{{4000, 3000}}, "after its end"},
		{"overlap", 128, 128, []gptEntry{{2048, 4095}, {4000, 6000}}, "overlap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := craftGPT(t, 8*mib, c.count, c.esize, c.parts)
			_, err := OpenDisk(p)
			if !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("want a one-line ErrBadTable naming %q, got %v", c.want, err)
			}
		})
	}
	// A corrupted header CRC is named too.
	p := craftGPT(t, 8*mib, 128, 128, []gptEntry{{2048, 4095}})
	data, _ := os.ReadFile(p)
	data[512+80] = 0xFF
	os.WriteFile(p, data, 0o644)
	if _, err := OpenDisk(p); !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), "header CRC32") {
		t.Fatalf("bad CRC: %v", err)
	}
	// A sound table passes the check.
	if err := checkFile(t, craftGPT(t, 8*mib, 128, 128, []gptEntry{{2048, 4095}, {4096, 8191}})); err != nil {
		t.Fatal(err)
	}
}

func checkFile(t *testing.T, p string) error {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	return CheckGPT(f, st.Size())
}

// Whatever the header says, CheckGPT reads a bounded amount and never
// panics.
func FuzzCheckGPT(f *testing.F) {
	f.Add(uint32(128), uint32(128), uint64(2048), uint64(4095), uint64(2))
	f.Add(uint32(0xFFFFFFFF), uint32(0xFFFFFFFF), uint64(1<<60), uint64(1<<64-1), uint64(1<<63))
	f.Fuzz(func(t *testing.T, count, esize uint32, start, end, arrayLBA uint64) {
		img := make([]byte, 64*512)
		h := img[512:]
		le := binary.LittleEndian
		copy(h, "EFI PART")
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], 1)
		le.PutUint64(h[40:], 34)
		le.PutUint64(h[48:], 60)
		le.PutUint64(h[72:], arrayLBA)
		le.PutUint32(h[80:], count)
		le.PutUint32(h[84:], esize)
		if arrayLBA < 64 && esize >= 128 {
			e := img[arrayLBA*512:]
			if len(e) >= 48 {
				copy(e[:16], bytes.Repeat([]byte{1}, 16))
				le.PutUint64(e[32:], start)
				le.PutUint64(e[40:], end)
			}
		}
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		CheckGPT(bytes.NewReader(img), int64(len(img)))
	})
}
