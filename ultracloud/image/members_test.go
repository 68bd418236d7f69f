package image

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Signature writers for the members disko makes and this package only
// recognises, laid out per each format's on-disk spec. Real blkid
// (util-linux) must name what they write the same way Sniff does, so the
// test checks Sniff against an independent implementation.
func luks1() []byte {
	b := make([]byte, 1<<20)
	copy(b, "LUKS\xba\xbe")
	binary.BigEndian.PutUint16(b[6:], 1)
	copy(b[8:], "aes")
	copy(b[40:], "xts-plain64")
	copy(b[72:], "sha256")
	binary.BigEndian.PutUint32(b[104:], 4096)
	binary.BigEndian.PutUint32(b[108:], 64)
	copy(b[168:], "6f1d7f2e-3c4b-4a5d-9e8f-0a1b2c3d4e5f")
	return b
}

func luks2(label string) []byte {
	b := make([]byte, 1<<20)
	copy(b, "LUKS\xba\xbe")
	binary.BigEndian.PutUint16(b[6:], 2)
	binary.BigEndian.PutUint64(b[8:], 16384)
	binary.BigEndian.PutUint64(b[16:], 1)
	copy(b[24:], label)
	copy(b[72:], "sha256")
	copy(b[168:], "0b6f63d4-84c2-4d42-9cf8-65bb4a1c2d7e")
	return b
}

func xfs(label string) []byte {
	b := make([]byte, 1<<20)
	copy(b, "XFSB")
	be := binary.BigEndian
	be.PutUint32(b[4:], 4096)                                                          // blocksize
	be.PutUint64(b[8:], 16384)                                                         // dblocks
	be.PutUint32(b[80:], 1)                                                            // rextsize
	be.PutUint32(b[84:], 16384)                                                        // agblocks
	be.PutUint32(b[88:], 1)                                                            // agcount
	be.PutUint16(b[100:], 0x04)                                                        // versionnum: v4
	be.PutUint16(b[102:], 512)                                                         // sectsize
	be.PutUint16(b[104:], 256)                                                         // inodesize
	be.PutUint16(b[106:], 16)                                                          // inopblock
	copy(b[108:120], label)                                                            // fname
	b[120], b[121], b[122], b[123], b[124] = 12, 9, 8, 4, 14                           // blocklog sectlog inodelog inopblog agblklog
	copy(b[32:48], "\x11\x22\x33\x44\x55\x66\x47\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x01") // uuid
	return b
}

func btrfs(label string) []byte {
	b := make([]byte, 1<<20)
	sb := b[0x10000 : 0x10000+4096]
	le := binary.LittleEndian
	copy(sb[32:48], "\x01\x23\x45\x67\x89\xab\x4c\xde\x8f\x01\x23\x45\x67\x89\xab\xcd") // fsid
	le.PutUint64(sb[48:], 0x10000)                                                      // bytenr
	copy(sb[64:], "_BHRfS_M")
	le.PutUint64(sb[112:], 1<<20) // total_bytes
	le.PutUint64(sb[136:], 1)     // num_devices
	le.PutUint32(sb[144:], 4096)  // sectorsize
	le.PutUint32(sb[148:], 16384) // nodesize
	copy(sb[0x12b:], label)
	le.PutUint32(sb[0:], crc32.Checksum(sb[32:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func mdraid(name string) []byte {
	b := make([]byte, 1<<20)
	sb := b[4096 : 4096+1024]
	le := binary.LittleEndian
	le.PutUint32(sb[0:], 0xa92b4efc)
	le.PutUint32(sb[4:], 1)                                                             // major version
	copy(sb[16:32], "\xde\xad\xbe\xef\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb") // set uuid
	copy(sb[32:64], name)
	le.PutUint32(sb[72:], 1)     // level
	le.PutUint64(sb[128:], 2048) // data_offset
	le.PutUint64(sb[136:], 1000) // data_size
	le.PutUint64(sb[144:], 8)    // super_offset: 4 KiB, metadata 1.2
	le.PutUint32(sb[220:], 2)    // max_dev
	le.PutUint16(sb[256:], 0)    // dev_roles
	le.PutUint16(sb[258:], 1)
	size := 256 + 2*2
	var sum uint64
	for i := 0; i+4 <= size; i += 4 {
		sum += uint64(le.Uint32(sb[i:]))
	}
	le.PutUint32(sb[216:], uint32(sum&0xffffffff)+uint32(sum>>32))
	return b
}

func lvm2() []byte {
	b := make([]byte, 1<<20)
	l := b[512:1024]
	le := binary.LittleEndian
	copy(l, "LABELONE")
	le.PutUint64(l[8:], 1)   // sector_xl
	le.PutUint32(l[20:], 32) // offset_xl
	copy(l[24:], "LVM2 001")
	copy(l[32:], "abcdefghijklmnopqrstuvwxyz012345") // pv uuid
	// LVM's crc: CRC-32 (IEEE, reflected) from 0xf597a6cf, no final xor.
	le.PutUint32(l[16:], ^crc32.Update(^uint32(0xf597a6cf), crc32.IEEETable, l[20:]))
	return b
}

func zfs() []byte {
	b := make([]byte, 1<<20)
	for i := 0; i < 8; i++ {
		off := 128<<10 + i*1024
		binary.LittleEndian.PutUint64(b[off:], 0x00bab10c)
		binary.LittleEndian.PutUint64(b[off+8:], 5000) // version
	}
	return b
}

func TestSniffMembersAgreesWithBlkid(t *testing.T) {
	for _, tc := range []struct {
		name, typ, label string
		data             []byte
	}{
		{"luks1", FSLUKS, "", luks1()},
		{"luks2", FSLUKS, "cryptroot", luks2("cryptroot")},
		{"xfs", FSXFS, "data", xfs("data")},
		{"btrfs", FSBtrfs, "pool", btrfs("pool")},
		{"mdraid", FSMDRaid, "nixos:raid1", mdraid("nixos:raid1")},
		{"lvm2", FSLVMPV, "", lvm2()},
		{"zfs", FSZFS, "", zfs()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 64 MiB (sparse): blkid skips RAID probes on "floppies" and
			// ZFS below 64 MiB.
			path := filepath.Join(t.TempDir(), tc.name)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 64<<20); err != nil {
				t.Fatal(err)
			}
			f, _ := os.Open(path)
			defer f.Close()
			got, err := Sniff(f, 0)
			if err != nil || got.Type != tc.typ || got.Label != tc.label {
				t.Fatalf("Sniff: %+v %v, want %s %q", got, err, tc.typ, tc.label)
			}
			if _, err := exec.LookPath("blkid"); err != nil {
				t.Skip("no blkid to cross-check")
			}
			out, err := exec.Command("blkid", "-p", "-o", "export", path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "TYPE="+tc.typ+"\n") {
				t.Fatalf("blkid does not see %s: %v\n%s", tc.typ, err, out)
			}
		})
	}
}
