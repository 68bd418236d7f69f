package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
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
	FS       FSInfo `json:"fs"`
}

// Disk is a partitioned disk image opened read-only, in-process.
type Disk struct {
	Path       string          `json:"path"`
	Size       int64           `json:"size"`
	Partitions []DiskPartition `json:"partitions"`
	d          *disk.Disk
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
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open disk %s: %w", p, err)
	}
	out := &Disk{Path: p, Size: size, d: d, f: f}
	tbl, err := d.GetPartitionTable()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: %w: %v", p, ErrNoTable, err)
	}
	gt, ok := tbl.(*gpt.Table)
	if !ok {
		out.Close()
		return nil, fmt.Errorf("%s: %w (found %s)", p, ErrNoTable, tbl.Type())
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
			FirstLBA: gp.Start, LastLBA: gp.End}
		dp.FS, _ = Sniff(f, int64(gp.Start)*512)
		out.Partitions = append(out.Partitions, dp)
	}
	return out, nil
}

// Close releases the image.
func (d *Disk) Close() error {
	if d.d != nil {
		d.d.Close()
	}
	return d.f.Close()
}

func (d *Disk) filesystem(index int) (filesystem.FileSystem, error) {
	for _, p := range d.Partitions {
		if p.Index == index {
			if p.FS.Type != FSVfat && p.FS.Type != FSExt4 {
				return nil, fmt.Errorf("partition %d holds %q; files can be read on vfat and ext4", index, p.FS.Type)
			}
			return d.d.GetFilesystem(index)
		}
	}
	return nil, fmt.Errorf("no partition %d", index)
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
