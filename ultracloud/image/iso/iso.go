package iso

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/photoncloud/testkit/ultracloud/image"
)

// ErrISO: an ISO that cannot be built or read.
var ErrISO = errors.New("iso")

// maxISOFile is ISO 9660's single-extent limit; go-diskfs truncates larger
// files silently, so they are refused.
const maxISOFile = 4<<30 - 1

// efiBootImage is where BuildISO puts the EFI El Torito image.
const efiBootImage = "/boot/efiboot.img"

// Options describe an ISO to build.
type Options struct {
	// VolumeID is the volume identifier (≤ 32 characters; default ULTRACLOUD).
	VolumeID string
	// Files maps ISO paths to their sources.
	Files map[string]image.Source
	// EFIFiles, when set, are put into a FAT image that becomes the El
	// Torito EFI boot entry (e.g. EFI/BOOT/BOOTX64.EFI, loader/…, the
	// kernel and initrd systemd-boot loads).
	EFIFiles map[string]image.Source
	// BIOSBootFile is an ISO path (one of Files) to add as a no-emulation
	// BIOS boot entry (e.g. isolinux.bin); empty for UEFI only.
	BIOSBootFile string
	// DeepDirectories allows trees deeper than ISO 9660's 8 levels.
	DeepDirectories bool
}

// Build writes an ISO 9660 image with Rock Ridge to out (Joliet stays
// off: go-diskfs's breaks BIOS boot). It works in a private temporary
// directory, never in (or on) a caller's directory.
func Build(ctx context.Context, out string, o Options) error {
	if o.VolumeID == "" {
		o.VolumeID = "ULTRACLOUD"
	}
	if len(o.VolumeID) > 32 {
		return fmt.Errorf("%w: volume id %q longer than 32 characters", ErrISO, o.VolumeID)
	}
	files := map[string]image.Source{}
	var total int64
	for n, s := range o.Files {
		p := path.Clean("/" + n)
		sz, err := s.Size()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrISO, n, err)
		}
		if sz > maxISOFile {
			return fmt.Errorf("%w: %s is %d bytes; ISO 9660 files must be under 4 GiB", ErrISO, n, sz)
		}
		if depth := strings.Count(p, "/"); depth > 8 && !o.DeepDirectories {
			return fmt.Errorf("%w: %s is %d levels deep; ISO 9660 allows 8 (set DeepDirectories)", ErrISO, n, depth)
		}
		files[p] = s
		total += sz
	}
	if o.BIOSBootFile != "" {
		if _, ok := files[path.Clean("/"+o.BIOSBootFile)]; !ok {
			return fmt.Errorf("%w: BIOSBootFile %s is not among Files", ErrISO, o.BIOSBootFile)
		}
	}
	work, err := os.MkdirTemp("", "uciso-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var entries []*iso9660.ElToritoEntry
	if len(o.EFIFiles) > 0 {
		img := filepath.Join(work, "efiboot.img")
		if err := image.BuildFAT(ctx, img, "EFIBOOT", o.EFIFiles); err != nil {
			return fmt.Errorf("%w: EFI boot image: %v", ErrISO, err)
		}
		st, _ := os.Stat(img)
		total += st.Size()
		files[efiBootImage] = image.Source{Path: img}
		entries = append(entries, &iso9660.ElToritoEntry{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: efiBootImage})
	}
	if o.BIOSBootFile != "" {
		e := &iso9660.ElToritoEntry{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: path.Clean("/" + o.BIOSBootFile), BootTable: true, LoadSegment: 0}
		entries = append([]*iso9660.ElToritoEntry{e}, entries...)
	}
	size := total + int64(len(files))*4*2048 + 4<<20
	size = (size + 2047) / 2048 * 2048
	os.Remove(out)
	d, err := diskfs.Create(out, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("%w: create %s: %v", ErrISO, out, err)
	}
	defer d.Close()
	d.LogicalBlocksize = 2048
	space := filepath.Join(work, "tree")
	if err := os.Mkdir(space, 0o755); err != nil {
		return err
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: o.VolumeID, WorkDir: space})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrISO, err)
	}
	if err := image.WriteFiles(ctx, fsys, files); err != nil {
		return fmt.Errorf("%w: %v", ErrISO, err)
	}
	opts := iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: o.VolumeID, DeepDirectories: o.DeepDirectories}
	if len(entries) > 0 {
		opts.ElTorito = &iso9660.ElTorito{BootCatalog: "/boot/boot.cat", Entries: entries}
	}
	if err := fsys.(*iso9660.FileSystem).Finalize(opts); err != nil {
		return fmt.Errorf("%w: finalize: %v", ErrISO, err)
	}
	return nil
}

// BootEntry is one El Torito boot catalog entry.
type BootEntry struct {
	Platform  string `json:"platform"` // bios, efi, ppc, mac, 0x…
	Bootable  bool   `json:"bootable"`
	Emulation int    `json:"emulation"` // 0: no emulation
	Sectors   uint16 `json:"sectors"`   // 512-byte sectors to load (0: to the end)
	LBA       uint32 `json:"lba"`       // 2048-byte sector of the image
}

func platformName(p byte) string {
	switch p {
	case 0:
		return "bios"
	case 1:
		return "ppc"
	case 2:
		return "mac"
	case 0xef:
		return "efi"
	}
	return fmt.Sprintf("%#x", p)
}

// Image is an ISO image opened read-only, in-process.
type Image struct {
	Path        string      `json:"path"`
	VolumeID    string      `json:"volumeID"`
	Size        int64       `json:"size"`
	BootEntries []BootEntry `json:"bootEntries,omitempty"`
	f           *os.File
	d           *disk.Disk
	fsys        filesystem.FileSystem
}

// Open reads an ISO's volume descriptors, its El Torito boot catalog
// and its directory tree. It never writes.
func Open(p string) (*Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	iso := &Image{Path: p, f: f}
	if iso.Size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	if err := iso.readDescriptors(); err != nil {
		f.Close()
		return nil, err
	}
	if err := image.CheckGPT(f, iso.Size); err != nil { // a hybrid ISO's GPT is parsed on open
		f.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrISO, p, err)
	}
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrISO, p, err)
	}
	iso.d = d
	fsys, err := iso9660.Read(d.Backend, iso.Size, 0, 2048)
	if err != nil {
		iso.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrISO, p, err)
	}
	iso.fsys = fsys
	return iso, nil
}

func (iso *Image) readDescriptors() error {
	sec := make([]byte, 2048)
	for lba := int64(16); lba < 16+64; lba++ {
		if _, err := iso.f.ReadAt(sec, lba*2048); err != nil {
			return fmt.Errorf("%w: %s: volume descriptor %d: %v", ErrISO, iso.Path, lba, err)
		}
		if string(sec[1:6]) != "CD001" {
			return fmt.Errorf("%w: %s: no ISO 9660 volume descriptor at sector %d", ErrISO, iso.Path, lba)
		}
		switch sec[0] {
		case 1:
			iso.VolumeID = strings.TrimRight(string(sec[40:72]), " \x00") // go-diskfs pads with NULs
		case 0:
			if strings.HasPrefix(string(sec[7:39]), "EL TORITO SPECIFICATION") {
				if err := iso.readCatalog(binary.LittleEndian.Uint32(sec[0x47:])); err != nil {
					return err
				}
			}
		case 255: // set terminator
			return nil
		}
	}
	return fmt.Errorf("%w: %s: no volume descriptor set terminator", ErrISO, iso.Path)
}

func (iso *Image) readCatalog(lba uint32) error {
	cat := make([]byte, 2048)
	if _, err := iso.f.ReadAt(cat, int64(lba)*2048); err != nil {
		return fmt.Errorf("%w: boot catalog at sector %d: %v", ErrISO, lba, err)
	}
	if cat[0] != 1 || cat[30] != 0x55 || cat[31] != 0xAA {
		return fmt.Errorf("%w: boot catalog at sector %d has no validation entry", ErrISO, lba)
	}
	platform := cat[1]
	entry := func(b []byte, plat byte) BootEntry {
		return BootEntry{Platform: platformName(plat), Bootable: b[0] == 0x88, Emulation: int(b[1] & 0x0f),
			Sectors: binary.LittleEndian.Uint16(b[6:]), LBA: binary.LittleEndian.Uint32(b[8:])}
	}
	iso.BootEntries = append(iso.BootEntries, entry(cat[32:64], platform))
	for off := 64; off+32 <= len(cat); {
		h := cat[off : off+32]
		if h[0] != 0x90 && h[0] != 0x91 {
			break
		}
		n := int(binary.LittleEndian.Uint16(h[2:]))
		plat := h[1]
		off += 32
		for i := 0; i < n && off+32 <= len(cat); i++ {
			iso.BootEntries = append(iso.BootEntries, entry(cat[off:off+32], plat))
			off += 32
		}
		if h[0] == 0x91 {
			break
		}
	}
	return nil
}

// Close releases the image.
func (iso *Image) Close() error {
	if iso.d != nil {
		iso.d.Close()
	}
	return iso.f.Close()
}

// ReadDir lists a directory.
func (iso *Image) ReadDir(dir string) ([]fs.DirEntry, error) {
	return iso.fsys.ReadDir(fsPath(dir))
}

// ReadFile returns a file's contents.
func (iso *Image) ReadFile(name string) ([]byte, error) {
	f, err := iso.fsys.OpenFile(fsPath(name), os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrISO, name, err)
	}
	defer f.Close()
	// The size is the directory record's claim: a file larger than the
	// image that holds it is a lie, refused before anything is read.
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrISO, name, err)
	}
	if size > iso.Size || size > maxISOFile {
		return nil, fmt.Errorf("%w: %s claims %d bytes in a %d-byte image", ErrISO, name, size, iso.Size)
	}
	return io.ReadAll(io.LimitReader(f, size))
}

// Walk lists every file path (directories excluded), depth first.
func (iso *Image) Walk() ([]string, error) {
	var out []string
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("%w: directories nested deeper than 64", ErrISO)
		}
		ents, err := iso.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			if e.IsDir() {
				if err := walk(p, depth+1); err != nil {
					return err
				}
			} else {
				out = append(out, p)
			}
		}
		return nil
	}
	return out, walk("/", 0)
}

// fsPath turns a path into go-diskfs' io/fs form (no leading slash).
func fsPath(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}
