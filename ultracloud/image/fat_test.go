package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
)

// WriteFiles works on each filesystem go-diskfs writes, with nested
// directories and files larger than one copy buffer.
func TestWriteFilesEachFilesystem(t *testing.T) {
	big := make([]byte, copyBuf+12345)
	for i := range big {
		big[i] = byte(i % 253)
	}
	files := map[string]Source{
		"/etc/ultracloud/system-id": {Data: []byte("sys-1\n")},
		"/boot/vmlinuz":             {Data: big},
		"top":                       {Data: []byte("t")},
	}
	for _, fst := range []filesystem.Type{filesystem.TypeFat32, filesystem.TypeExt4} {
		p := filepath.Join(t.TempDir(), "fs.img")
		d, err := diskfs.Create(p, 64<<20, diskfs.SectorSizeDefault)
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: fst})
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFiles(context.Background(), fsys, files); err != nil {
			t.Fatalf("%v: %v", fst, err)
		}
		for name, src := range files {
			f, err := fsys.OpenFile(fsPath(name), os.O_RDONLY)
			if err != nil {
				t.Fatalf("%v: open %s: %v", fst, name, err)
			}
			got := make([]byte, len(src.Data)+1)
			n, _ := f.Read(got)
			for n < len(src.Data) {
				m, err := f.Read(got[n:])
				if m == 0 || err != nil {
					break
				}
				n += m
			}
			if string(got[:n]) != string(src.Data) {
				t.Fatalf("%v: %s: %d bytes back, want %d", fst, name, n, len(src.Data))
			}
		}
		d.Close()
	}
}
