package image

import (
	"bytes"
	"encoding/binary"
)

// sniffMember recognises, by their on-disk signatures, what disko makes
// but this package does not create: LUKS1/2 headers, LVM2 physical
// volumes, md RAID members (metadata 1.x at 0 or 4 KiB), btrfs, XFS and
// ZFS vdev labels. buf is read from the start of the partition.
func sniffMember(buf []byte, trim func([]byte) string) (FSInfo, bool) {
	at := func(off int, sig string) bool {
		return len(buf) >= off+len(sig) && string(buf[off:off+len(sig)]) == sig
	}
	switch {
	case at(0, "LUKS\xba\xbe") || at(0, "SKUL\xba\xbe"):
		info := FSInfo{Type: FSLUKS}
		if binary.BigEndian.Uint16(buf[6:]) == 2 {
			info.Label = trim(buf[24:72])
		}
		return info, true
	case at(0, "XFSB"):
		return FSInfo{Type: FSXFS, Label: trim(buf[108:120])}, true
	case at(0x10040, "_BHRfS_M"):
		return FSInfo{Type: FSBtrfs, Label: trim(buf[0x1012b : 0x1012b+256])}, true
	}
	// LVM2: a "LABELONE" label in one of the first four sectors, type
	// "LVM2 001".
	for s := 0; s < 4; s++ {
		if at(s*512, "LABELONE") && at(s*512+24, "LVM2 001") {
			return FSInfo{Type: FSLVMPV}, true
		}
	}
	// md 1.x superblock: magic 0xa92b4efc at 4 KiB (1.2) or 0 (1.1).
	for _, off := range []int{4096, 0} {
		if len(buf) >= off+64 && binary.LittleEndian.Uint32(buf[off:]) == 0xa92b4efc && binary.LittleEndian.Uint32(buf[off+4:]) == 1 {
			return FSInfo{Type: FSMDRaid, Label: trim(buf[off+32 : off+64])}, true
		}
	}
	// ZFS: uberblocks (magic 0x00bab10c, either endianness) in the ring at
	// 128 KiB of vdev label 0.
	le, be := []byte{0x0c, 0xb1, 0xba, 0, 0, 0, 0, 0}, []byte{0, 0, 0, 0, 0, 0xba, 0xb1, 0x0c}
	for off := 128 << 10; off+8 <= len(buf) && off < 256<<10; off += 1024 {
		if bytes.Equal(buf[off:off+8], le) || bytes.Equal(buf[off:off+8], be) {
			return FSInfo{Type: FSZFS}, true
		}
	}
	return FSInfo{}, false
}
