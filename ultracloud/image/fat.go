package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// Source is one file to place in an image: a host file or literal bytes.
type Source struct {
	// Path is a host file to copy (streamed in 8 MiB chunks).
	Path string
	// Data is used when Path is empty.
	Data []byte
}

func (s Source) Size() (int64, error) {
	if s.Path == "" {
		return int64(len(s.Data)), nil
	}
	st, err := os.Stat(s.Path)
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file", s.Path)
	}
	return st.Size(), nil
}

func (s Source) Open() (io.ReadCloser, error) {
	if s.Path == "" {
		return io.NopCloser(strings.NewReader(string(s.Data))), nil
	}
	return os.Open(s.Path)
}

// copyBuf is the write size into go-diskfs filesystems: small writes make
// one extent each on ext4, large ones (≥ 256 MiB) fail.
const copyBuf = 8 << 20

// fsPath turns an image path into go-diskfs's io/fs form: no leading
// slash, "." for the root (ext4 and ISO reject "/x").
func fsPath(p string) string {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "."
	}
	return c
}

// WriteFiles copies files (image path → source) into a go-diskfs
// filesystem, creating parent directories. Writes go in 8 MiB chunks.
func WriteFiles(ctx context.Context, fsys filesystem.FileSystem, files map[string]Source) error {
	return writeInto(ctx, fsys, files)
}

// writeInto copies files (image path → source) into fsys, in sorted order.
func writeInto(ctx context.Context, fsys filesystem.FileSystem, files map[string]Source) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	w := NewFSWriter(fsys)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := files[n].Open()
		if err != nil {
			return err
		}
		err = w.WriteFile(n, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// onlyWriter hides ReadFrom so io.CopyBuffer uses our buffer size.
type onlyWriter struct{ io.Writer }

// BuildFAT writes a FAT32 filesystem image holding files (image path →
// source) to out, sized to fit with room to spare. It is what an El Torito
// EFI entry or an ESP needs.
func BuildFAT(ctx context.Context, out, label string, files map[string]Source) error {
	var total int64
	for n, s := range files {
		sz, err := s.Size()
		if err != nil {
			return fmt.Errorf("FAT image: %s: %w", n, err)
		}
		total += (sz + 4095) / 4096 * 4096
	}
	size := max(total+total/8+8<<20, 40<<20) // FAT32 wants ≥ 65525 clusters
	size = (size + 1<<20 - 1) / (1 << 20) * (1 << 20)
	os.Remove(out)
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("FAT image %s: %w", out, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("FAT image %s: %w", out, err)
	}
	fsys, err := fat32.Create(file.New(f, false), size, 0, sectorSize, label, true)
	if err != nil {
		return fmt.Errorf("FAT image %s: %w", out, err)
	}
	return writeInto(ctx, fsys, files)
}

// FSWriter writes files one at a time into a go-diskfs filesystem,
// creating parent directories once each (ext4 and FAT both).
type FSWriter struct {
	fsys filesystem.FileSystem
	made map[string]bool
	buf  []byte
}

// NewFSWriter returns a writer into fsys.
func NewFSWriter(fsys filesystem.FileSystem) *FSWriter {
	return &FSWriter{fsys: fsys, made: map[string]bool{".": true}}
}

// WriteFile writes name (an image path) from r, streaming in 8 MiB chunks.
func (w *FSWriter) WriteFile(name string, r io.Reader) error {
	p := fsPath(name)
	var dirs []string
	for d := path.Dir(p); !w.made[d]; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if err := w.fsys.Mkdir(d); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
		w.made[d] = true
	}
	dst, err := w.fsys.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if w.buf == nil {
		w.buf = make([]byte, copyBuf)
	}
	_, err = io.CopyBuffer(onlyWriter{dst}, r, w.buf)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
