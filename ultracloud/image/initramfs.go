package image

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// ErrBadEntry: an initramfs entry that cannot be written (bad path, device
// file in a tree, conflicting types).
var ErrBadEntry = errors.New("bad initramfs entry")

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindCharDev
)

type entry struct {
	kind         entryKind
	perm         uint64
	data         []byte
	target       string
	major, minor uint64
}

// Initramfs is an in-memory initramfs under construction. Its output is
// reproducible: entries are sorted by path, parent directories are created
// implicitly, and every timestamp, owner and inode number is fixed, so the
// same inputs give byte-identical archives. The zero value is not usable;
// call NewInitramfs.
type Initramfs struct {
	entries map[string]entry
}

// NewInitramfs returns an empty initramfs.
func NewInitramfs() *Initramfs {
	return &Initramfs{entries: map[string]entry{}}
}

// clean normalises an archive path ("/bin/sh" → "bin/sh") and refuses paths
// that escape the root.
func clean(p string) (string, error) {
	c := path.Clean("/" + p)
	if c == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("%w: path %q", ErrBadEntry, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: path %q contains ..", ErrBadEntry, p)
		}
	}
	return c[1:], nil
}

func (i *Initramfs) put(p string, e entry) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	if old, ok := i.entries[c]; ok && (old.kind == kindDir) != (e.kind == kindDir) {
		return fmt.Errorf("%w: %q added as both a directory and a file", ErrBadEntry, c)
	}
	// Parents must be directories.
	for d := path.Dir(c); d != "."; d = path.Dir(d) {
		if old, ok := i.entries[d]; ok && old.kind != kindDir {
			return fmt.Errorf("%w: %q needs %q to be a directory", ErrBadEntry, c, d)
		}
	}
	i.entries[c] = e
	return nil
}

// AddFile adds a regular file with the given permission bits (e.g. 0o755).
func (i *Initramfs) AddFile(p string, data []byte, perm fs.FileMode) error {
	return i.put(p, entry{kind: kindFile, perm: uint64(perm.Perm()), data: data})
}

// AddFileFrom adds the host file src at p, keeping its permission bits.
func (i *Initramfs) AddFileFrom(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBadEntry, src)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", p, err)
	}
	return i.AddFile(p, data, st.Mode())
}

// AddDir adds a directory.
func (i *Initramfs) AddDir(p string, perm fs.FileMode) error {
	return i.put(p, entry{kind: kindDir, perm: uint64(perm.Perm())})
}

// AddSymlink adds a symbolic link p → target.
func (i *Initramfs) AddSymlink(p, target string) error {
	if target == "" {
		return fmt.Errorf("%w: symlink %q without target", ErrBadEntry, p)
	}
	return i.put(p, entry{kind: kindSymlink, perm: 0o777, target: target})
}

// AddCharDev adds a character device node (e.g. dev/console 5:1), which the
// kernel needs before init runs.
func (i *Initramfs) AddCharDev(p string, perm fs.FileMode, major, minor uint64) error {
	return i.put(p, entry{kind: kindCharDev, perm: uint64(perm.Perm()), major: major, minor: minor})
}

// AddTree copies the host directory src under prefix: directories, regular
// files and symlinks. Device nodes, sockets and pipes are refused.
func (i *Initramfs) AddTree(prefix, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := path.Join(prefix, filepath.ToSlash(rel))
		if rel == "." {
			if prefix == "" || prefix == "/" {
				return nil
			}
			return i.AddDir(dst, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsDir():
			return i.AddDir(dst, m)
		case m.IsRegular():
			return i.AddFileFrom(dst, p)
		case m&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return i.AddSymlink(dst, t)
		default:
			return fmt.Errorf("%w: %s is a %v; trees may hold only files, directories and symlinks", ErrBadEntry, p, m.Type())
		}
	})
}

// Paths returns every path in the archive, sorted, implicit parents included.
func (i *Initramfs) Paths() []string {
	all := map[string]bool{}
	for p := range i.entries {
		all[p] = true
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			all[d] = true
		}
	}
	out := make([]string, 0, len(all))
	for p := range all {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// WriteTo writes the archive as uncompressed newc cpio.
func (i *Initramfs) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	rw := cpio.Newc.Writer(cw)
	for n, p := range i.Paths() {
		e, ok := i.entries[p]
		if !ok {
			e = entry{kind: kindDir, perm: 0o755}
		}
		info := cpio.Info{Name: p, Ino: uint64(n + 1), NLink: 1}
		var rec cpio.Record
		switch e.kind {
		case kindDir:
			info.Mode, info.NLink = cpio.S_IFDIR|e.perm, 2
			rec = cpio.Record{Info: info}
		case kindFile:
			info.Mode = cpio.S_IFREG | e.perm
			rec = cpio.StaticRecord(e.data, info)
		case kindSymlink:
			info.Mode = cpio.S_IFLNK | 0o777
			rec = cpio.StaticRecord([]byte(e.target), info)
		case kindCharDev:
			info.Mode, info.Rmajor, info.Rminor = cpio.S_IFCHR|e.perm, e.major, e.minor
			rec = cpio.Record{Info: info}
		}
		if err := rw.WriteRecord(rec); err != nil {
			return cw.n, fmt.Errorf("initramfs %s: %w", p, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, fmt.Errorf("initramfs trailer: %w", err)
	}
	return cw.n, nil
}

// Bytes returns the archive, gzip-compressed when gz is true (with a fixed
// header, so the output stays reproducible).
func (i *Initramfs) Bytes(gz bool) ([]byte, error) {
	var buf bytes.Buffer
	if !gz {
		_, err := i.WriteTo(&buf)
		return buf.Bytes(), err
	}
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := i.WriteTo(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// InitramfsEntry is one entry read back from an archive.
type InitramfsEntry struct {
	Path   string
	Mode   fs.FileMode
	Data   []byte
	Target string
}

// DefaultMaxInitramfs bounds what a gzip-compressed initramfs may expand
// to (see MaxExpanded).
const DefaultMaxInitramfs = 512 << 20

// ReadInitramfsOption adjusts ReadInitramfs.
type ReadInitramfsOption func(*readInitramfsOptions)

type readInitramfsOptions struct{ maxExpanded int64 }

// MaxExpanded sets how many bytes a compressed archive may expand to
// (default DefaultMaxInitramfs); past it ReadInitramfs fails.
func MaxExpanded(n int64) ReadInitramfsOption {
	return func(o *readInitramfsOptions) { o.maxExpanded = n }
}

// ReadInitramfs reads an uncompressed or gzip-compressed newc archive. It
// is written for untrusted input: every length is checked against the data
// before anything is allocated, and decompression stops at MaxExpanded
// bytes (a gzip bomb is an error, not an allocation).
func ReadInitramfs(data []byte, opts ...ReadInitramfsOption) ([]InitramfsEntry, error) {
	o := readInitramfsOptions{maxExpanded: DefaultMaxInitramfs}
	for _, opt := range opts {
		opt(&o)
	}
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("initramfs gzip: %w", err)
		}
		if data, err = io.ReadAll(io.LimitReader(zr, o.maxExpanded+1)); err != nil {
			return nil, fmt.Errorf("initramfs gzip: %w", err)
		}
		if int64(len(data)) > o.maxExpanded {
			return nil, fmt.Errorf("initramfs gzip: expands past %d bytes; raise the bound with MaxExpanded if this archive is trusted", o.maxExpanded)
		}
	}
	const hdrLen = 110
	var out []InitramfsEntry
	pos := 0
	for {
		if len(data)-pos < hdrLen {
			return nil, fmt.Errorf("initramfs: truncated header at offset %d", pos)
		}
		h := data[pos : pos+hdrLen]
		if m := string(h[:6]); m != "070701" && m != "070702" {
			return nil, fmt.Errorf("initramfs: bad magic %q at offset %d (want newc 070701)", m, pos)
		}
		var f [13]uint64
		for k := range f {
			v, err := strconv.ParseUint(string(h[6+8*k:14+8*k]), 16, 32)
			if err != nil {
				return nil, fmt.Errorf("initramfs: bad header field %d at offset %d", k, pos)
			}
			f[k] = v
		}
		mode, size, nameLen := f[1], f[6], f[11]
		pos += hdrLen
		if nameLen == 0 || uint64(len(data)-pos) < nameLen {
			return nil, fmt.Errorf("initramfs: bad name length %d at offset %d", nameLen, pos)
		}
		name := string(bytes.TrimRight(data[pos:pos+int(nameLen)], "\x00"))
		pos = align4(pos + int(nameLen))
		if name == "TRAILER!!!" {
			return out, nil
		}
		if pos > len(data) || uint64(len(data)-pos) < size {
			return nil, fmt.Errorf("initramfs: %s claims %d bytes, %d remain", name, size, max(len(data)-pos, 0))
		}
		body := data[pos : pos+int(size)]
		pos = align4(pos + int(size))
		e := InitramfsEntry{Path: name, Mode: fs.FileMode(mode & 0o777)}
		switch mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			e.Mode |= fs.ModeDir
		case cpio.S_IFLNK:
			e.Mode |= fs.ModeSymlink
			e.Target = string(body)
		case cpio.S_IFCHR:
			e.Mode |= fs.ModeCharDevice | fs.ModeDevice
		default:
			e.Data = bytes.Clone(body)
		}
		out = append(out, e)
	}
}

func align4(n int) int { return (n + 3) &^ 3 }
