package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// ErrNoTable: the image has no GPT.
var ErrNoTable = errors.New("no GPT partition table")

// DiskPartition is one GPT entry of an image and what it holds.
type DiskPartition struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	TypeGUID string `json:"typeGUID"`
	GUID     string `json:"guid"`
	FirstLBA uint64 `json:"firstLBA"`
	LastLBA  uint64 `json:"lastLBA"`
	// Attributes are the GPT attribute bits (bit 0: required, 2: legacy
	// BIOS bootable, 60–63: type specific).
	Attributes uint64 `json:"attributes,omitempty"`
	FS         FSInfo `json:"fs"`
}

// Disk is a partitioned disk image opened read-only, in-process.
type Disk struct {
	Path       string          `json:"path"`
	Size       int64           `json:"size"`
	Partitions []DiskPartition `json:"partitions"`
	b          backend.Storage
	f          *os.File
}

// OpenDisk reads the GPT of a raw image or block device and sniffs each
// partition's filesystem. It never writes.
func OpenDisk(p string) (*Disk, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := CheckGPT(f, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	// go-diskfs' partition and filesystem packages directly: its diskfs and
	// disk packages link the ISO reader and writer, which a guest must not.
	out := &Disk{Path: p, Size: size, b: file.New(f, true), f: f}
	gt, err := gpt.Read(out.b, sectorSize, sectorSize)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: %w: %v", p, ErrNoTable, err)
	}
	for _, gp := range gt.Partitions {
		if gp == nil || gp.Type == gpt.Unused {
			continue
		}
		if gp.End < gp.Start || gp.End >= uint64(size)/512 {
			out.Close()
			return nil, fmt.Errorf("%s: partition %d spans sectors %d–%d outside the %d-byte image", p, gp.Index, gp.Start, gp.End, size)
		}
		dp := DiskPartition{Index: gp.Index, Name: gp.Name, TypeGUID: strings.ToUpper(string(gp.Type)), GUID: gp.GUID,
			FirstLBA: gp.Start, LastLBA: gp.End, Attributes: gp.Attributes}
		dp.FS, _ = Sniff(f, int64(gp.Start)*512)
		out.Partitions = append(out.Partitions, dp)
	}
	return out, nil
}

// Close releases the image.
func (d *Disk) Close() error {
	return d.f.Close()
}

func (d *Disk) filesystem(index int) (filesystem.FileSystem, error) {
	for _, p := range d.Partitions {
		if p.Index == index {
			if p.FS.Type != FSVfat && p.FS.Type != FSExt4 {
				return nil, fmt.Errorf("partition %d holds %q; files can be read on vfat and ext4", index, p.FS.Type)
			}
			return openFS(d.b, p.FS.Type, int64(p.FirstLBA)*sectorSize, int64(p.LastLBA-p.FirstLBA+1)*sectorSize)
		}
	}
	return nil, fmt.Errorf("no partition %d", index)
}

// sectorSize is the logical sector size of the images the testkit reads
// and writes.
const sectorSize = 512

// openFS opens the vfat or ext4 filesystem at offset (size bytes) of b.
func openFS(b backend.Storage, typ string, offset, size int64) (filesystem.FileSystem, error) {
	switch typ {
	case FSVfat:
		return fat32.Read(b, size, offset, sectorSize)
	case FSExt4:
		return ext4.Read(b, size, offset, sectorSize)
	}
	return nil, fmt.Errorf("a %q filesystem cannot be opened; files can be read on vfat and ext4", typ)
}

// OpenPartitionFS opens the filesystem of partition index of the GPT
// image or block device p (read-write unless readOnly), as a go-diskfs
// filesystem the caller writes through (see FSWriter). Close the returned
// closer when done.
func OpenPartitionFS(p string, index int, readOnly bool) (filesystem.FileSystem, io.Closer, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		return nil, nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		err = CheckGPT(f, size)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	b := file.New(f, readOnly)
	gt, err := gpt.Read(b, sectorSize, sectorSize)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w: %v", p, ErrNoTable, err)
	}
	for _, gp := range gt.Partitions {
		if gp == nil || gp.Index != index || gp.Type == gpt.Unused {
			continue
		}
		info, _ := Sniff(f, int64(gp.Start)*sectorSize)
		fsys, err := openFS(b, info.Type, int64(gp.Start)*sectorSize, int64(gp.End-gp.Start+1)*sectorSize)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s partition %d: %w", p, index, err)
		}
		return fsys, f, nil
	}
	f.Close()
	return nil, nil, fmt.Errorf("%s: no partition %d", p, index)
}

// ReadDir lists a directory of partition index's filesystem.
func (d *Disk) ReadDir(index int, dir string) ([]fs.DirEntry, error) {
	fsys, err := d.filesystem(index)
	if err != nil {
		return nil, err
	}
	return fsys.ReadDir(fsPath(dir))
}

// ReadFile returns a file of partition index's filesystem.
func (d *Disk) ReadFile(index int, name string) ([]byte, error) {
	fsys, err := d.filesystem(index)
	if err != nil {
		return nil, err
	}
	f, err := fsys.OpenFile(fsPath(name), os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %s: %w", index, name, err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<30))
}
