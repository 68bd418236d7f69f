package image

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Filesystem types Sniff recognises.
const (
	FSNone    = ""
	FSVfat    = "vfat"
	FSExt4    = "ext4"
	FSSwap    = "swap"
	FSISO9660 = "iso9660"
	// Members and filesystems this package recognises but does not create
	// (blkid's names): real images make them with real disko.
	FSLUKS   = "crypto_LUKS"
	FSLVMPV  = "LVM2_member"
	FSMDRaid = "linux_raid_member"
	FSBtrfs  = "btrfs"
	FSXFS    = "xfs"
	FSZFS    = "zfs_member"
)

// FSInfo is what a partition's first blocks say about it.
type FSInfo struct {
	Type  string `json:"type"`
	Label string `json:"label,omitempty"`
}

// Sniff identifies the filesystem at offset of r (ext2/3/4 count as ext4,
// FAT12/16/32 as vfat) and reads its label, from the superblock alone.
func Sniff(r io.ReaderAt, offset int64) (FSInfo, error) {
	buf := make([]byte, 256*1024) // up to the ZFS uberblock ring
	n, err := r.ReadAt(buf, offset)
	if n < 4096 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return FSInfo{}, fmt.Errorf("sniff at %d: %w", offset, err)
	}
	buf = buf[:n]
	trim := func(b []byte) string { return strings.TrimRight(string(bytes.TrimRight(b, "\x00")), " ") }
	switch {
	case len(buf) >= 1024+136 && binary.LittleEndian.Uint16(buf[1024+56:]) == 0xEF53:
		return FSInfo{Type: FSExt4, Label: trim(buf[1024+120 : 1024+136])}, nil
	case string(buf[4086:4096]) == "SWAPSPACE2":
		return FSInfo{Type: FSSwap, Label: trim(buf[1052:1068])}, nil
	case buf[510] == 0x55 && buf[511] == 0xAA && string(buf[82:87]) == "FAT32":
		return FSInfo{Type: FSVfat, Label: noName(trim(buf[71:82]))}, nil
	case buf[510] == 0x55 && buf[511] == 0xAA && (string(buf[54:59]) == "FAT16" || string(buf[54:59]) == "FAT12"):
		return FSInfo{Type: FSVfat, Label: noName(trim(buf[43:54]))}, nil
	case len(buf) >= 32769+5 && string(buf[32769:32774]) == "CD001":
		return FSInfo{Type: FSISO9660, Label: trim(buf[32808:32840])}, nil
	}
	if info, ok := sniffMember(buf, trim); ok {
		return info, nil
	}
	return FSInfo{Type: FSNone}, nil
}

func noName(s string) string {
	if s == "NO NAME" {
		return ""
	}
	return s
}

// WriteSwapHeader writes a Linux swap signature (version 1, as mkswap) at
// offset for a swap area of size bytes with 4 KiB pages.
func WriteSwapHeader(w io.WriterAt, offset, size int64, label string) error {
	const page = 4096
	if size < 10*page {
		return fmt.Errorf("swap area of %d bytes is too small (need 40 KiB)", size)
	}
	if len(label) > 16 {
		return fmt.Errorf("swap label %q longer than 16 bytes", label)
	}
	hdr := make([]byte, page)
	binary.LittleEndian.PutUint32(hdr[1024:], 1)                   // version
	binary.LittleEndian.PutUint32(hdr[1028:], uint32(size/page-1)) // last page
	if _, err := rand.Read(hdr[1036:1052]); err != nil {           // uuid
		return err
	}
	hdr[1036+6] = hdr[1036+6]&0x0f | 0x40
	hdr[1036+8] = hdr[1036+8]&0x3f | 0x80
	copy(hdr[1052:1068], label)
	copy(hdr[page-10:], "SWAPSPACE2")
	_, err := w.WriteAt(hdr, offset)
	return err
}
