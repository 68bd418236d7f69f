package bootstrap

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

// ErrBundle: a bundle that is corrupt, does not match its digest, or holds
// an entry Extract refuses.
var ErrBundle = errors.New("bundle")

// Bundle targets: the parts of a bundle and where an installer puts them.
const (
	TargetESP  = "esp"  // the EFI system partition (mountpoint /boot)
	TargetRoot = "root" // the root filesystem (mountpoint /)
	// TargetNixCache is a Nix binary cache holding a closure (narinfo +
	// nar/, see InstallClosure), which a node's agent installs into its
	// store without building.
	TargetNixCache = "nix-cache"
)

const manifestName = "MANIFEST.json"

// EntryType is the kind of a bundle entry.
type EntryType string

// Entry types. A Nix closure is full of symlinks; Extract writes them as
// entries and never follows one.
const (
	// EntryFile is a regular file (the zero value).
	EntryFile EntryType = ""
	// EntrySymlink is a symbolic link; Link is its target, written as is
	// (it may be absolute, e.g. /nix/store/…) and never followed.
	EntrySymlink EntryType = "symlink"
	// EntryHardlink is a hard link to an earlier regular-file entry of the
	// same target; Link is that entry's path.
	EntryHardlink EntryType = "hardlink"
)

// BundleFile is one manifest entry.
type BundleFile struct {
	Target string      `json:"target"` // esp | root
	Path   string      `json:"path"`   // relative to the target
	Type   EntryType   `json:"type,omitempty"`
	Link   string      `json:"link,omitempty"`
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256,omitempty"`
}

// modeBits are the mode bits a bundle may carry.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// tarMode converts a FileMode to the Unix bits a tar header carries.
func tarMode(m fs.FileMode) int64 {
	u := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// Manifest describes a bundle: its system and every file in it.
type Manifest struct {
	SystemID string       `json:"systemID"`
	Files    []BundleFile `json:"files"`
}

// Bundle is a packed, content-addressed system: tar + zstd, the manifest
// first, then the files in manifest order. Its name is its sha256.
type Bundle struct {
	Path     string   `json:"path"`
	SHA256   string   `json:"sha256"`
	Size     int64    `json:"size"`
	Manifest Manifest `json:"manifest"`
}

// PackBundle packs dir into outDir/<sha256>.tar.zst. dir holds esp/ and/or
// root/; every regular file, symlink and hard link under them is packed
// (devices, FIFOs and sockets are refused). The output is reproducible for
// the same tree.
func PackBundle(ctx context.Context, dir, systemID, outDir string) (*Bundle, error) {
	var m Manifest
	m.SystemID = systemID
	inode := map[int]string{} // manifest index → "dev:ino" of multiply linked files
	for _, target := range []string{TargetESP, TargetRoot, TargetNixCache} {
		base := filepath.Join(dir, target)
		if _, err := os.Stat(base); errors.Is(err, os.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			bf := BundleFile{Target: target, Path: filepath.ToSlash(rel), Mode: info.Mode() & modeBits}
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				link, err := os.Readlink(p)
				if err != nil {
					return err
				}
				bf.Type, bf.Link, bf.Mode = EntrySymlink, link, 0o777
			case info.Mode().IsRegular():
				sum, err := FileSHA256(p)
				if err != nil {
					return err
				}
				bf.Size, bf.SHA256 = info.Size(), sum
				if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
					inode[len(m.Files)] = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
				}
			default:
				return fmt.Errorf("%w: %s is a %v; bundles hold regular files, symlinks and hard links only", ErrBundle, p, info.Mode().Type())
			}
			m.Files = append(m.Files, bf)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]string, len(m.Files))
	for i, k := range inode {
		keys[i] = m.Files[i].Target + "|" + k
	}
	idx := make([]int, len(m.Files))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		fa, fb := m.Files[idx[a]], m.Files[idx[b]]
		return fa.Target+"/"+fa.Path < fb.Target+"/"+fb.Path
	})
	sorted := make([]BundleFile, len(idx))
	first := map[string]string{} // inode key → path of the first entry
	for i, j := range idx {
		sorted[i] = m.Files[j]
		if k := keys[j]; k != "" {
			if p, ok := first[k]; ok {
				sorted[i].Type, sorted[i].Link, sorted[i].Size, sorted[i].SHA256 = EntryHardlink, p, 0, ""
			} else {
				first[k] = sorted[i].Path
			}
		}
	}
	m.Files = sorted
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%w: %s has no files under esp/ or root/", ErrBundle, dir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(outDir, ".bundle-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	zw, err := zstd.NewWriter(io.MultiWriter(tmp, h), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	mdata, _ := json.MarshalIndent(m, "", "  ")
	hdr := func(name string, size int64, mode fs.FileMode) *tar.Header {
		return &tar.Header{Name: name, Size: size, Mode: tarMode(mode), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(manifestName, int64(len(mdata)), 0o644)); err != nil {
		return nil, err
	}
	tw.Write(mdata)
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h := hdr(f.Target+"/"+f.Path, f.Size, f.Mode)
		switch f.Type {
		case EntrySymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		case EntryHardlink:
			h.Typeflag, h.Linkname = tar.TypeLink, f.Target+"/"+f.Link
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if f.Type != EntryFile {
			continue
		}
		src, err := os.Open(filepath.Join(dir, f.Target, filepath.FromSlash(f.Path)))
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	st, _ := tmp.Stat()
	tmp.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	out := filepath.Join(outDir, sum+".tar.zst")
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, err
	}
	return &Bundle{Path: out, SHA256: sum, Size: st.Size(), Manifest: m}, nil
}

// FileSHA256 is the hex sha256 of the file at p (how bundles are named
// and served).
func FileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Sink receives a bundle's files; Extract calls it only after the whole
// bundle has been checked.
type Sink interface {
	WriteFile(target, name string, mode fs.FileMode, r io.Reader) error
}

// OpenBundle checks the file at p against sha256 (if non-empty) and reads
// its manifest.
func OpenBundle(p, wantSHA string) (*Bundle, error) {
	sum, err := FileSHA256(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	if wantSHA != "" && sum != wantSHA {
		return nil, fmt.Errorf("%w: %s has sha256 %s, expected %s", ErrBundle, p, sum, wantSHA)
	}
	b := &Bundle{Path: p, SHA256: sum}
	st, _ := os.Stat(p)
	b.Size = st.Size()
	if err := b.walk(func(h *tar.Header, f *BundleFile, r io.Reader) error { return nil }); err != nil {
		return nil, err
	}
	return b, nil
}

// walk reads the bundle, checking every entry against the manifest (name,
// type, size, sha256) and calling fn for each file.
func (b *Bundle) walk(fn func(*tar.Header, *BundleFile, io.Reader) error) error {
	f, err := os.Open(b.Path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBundle, err)
	}
	defer f.Close()
	_, err = b.walkFile(f, fn)
	return err
}

// walkFile is walk over an open bundle file, read from its start; it
// returns the sha256 of the bytes it read (the whole file).
func (b *Bundle) walkFile(f io.ReadSeeker, fn func(*tar.Header, *BundleFile, io.Reader) error) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBundle, err)
	}
	whole := sha256.New()
	err := b.walkReader(io.TeeReader(f, whole), fn)
	if err == nil {
		io.Copy(whole, f) // trailing bytes (zstd padding) count too
	}
	return hex.EncodeToString(whole.Sum(nil)), err
}

func (b *Bundle) walkReader(f io.Reader, fn func(*tar.Header, *BundleFile, io.Reader) error) error {
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBundle, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil || h.Name != manifestName || h.Size > 16<<20 {
		return fmt.Errorf("%w: the first entry must be %s", ErrBundle, manifestName)
	}
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(tr, h.Size))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrBundle, err)
	}
	want, err := checkManifest(m)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBundle, err)
		}
		bf, ok := want[h.Name]
		if !ok {
			return fmt.Errorf("%w: entry %q is not in the manifest", ErrBundle, h.Name)
		}
		if err := matchEntry(h, bf); err != nil {
			return err
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return fmt.Errorf("%w: entry %q is a sparse file (%s); bundles hold whole files only", ErrBundle, h.Name, k)
			}
		}
		if seen[h.Name] {
			return fmt.Errorf("%w: entry %q appears twice", ErrBundle, h.Name)
		}
		seen[h.Name] = true
		if h.Size != bf.Size {
			return fmt.Errorf("%w: %q is %d bytes, manifest says %d", ErrBundle, h.Name, h.Size, bf.Size)
		}
		hs := sha256.New()
		if err := fn(h, bf, io.TeeReader(tr, hs)); err != nil {
			return err
		}
		io.Copy(hs, tr) // whatever fn did not read
		if got := hex.EncodeToString(hs.Sum(nil)); bf.Type == EntryFile && got != bf.SHA256 {
			return fmt.Errorf("%w: %q has sha256 %s, manifest says %s", ErrBundle, h.Name, got, bf.SHA256)
		}
	}
	for k := range want {
		if !seen[k] {
			return fmt.Errorf("%w: manifest lists %q but the bundle lacks it", ErrBundle, k)
		}
	}
	b.Manifest = m
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device node"
	case tar.TypeDir:
		return "directory"
	case tar.TypeGNUSparse:
		return "sparse file"
	case tar.TypeReg:
		return "regular file"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("type %q", t)
}

// checkName refuses targets other than esp/root/nix-cache, absolute
// paths and "..".
func checkName(target, name string) error {
	if target != TargetESP && target != TargetRoot && target != TargetNixCache {
		return fmt.Errorf("%w: target %q; use esp, root or nix-cache", ErrBundle, target)
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: path %q must be relative", ErrBundle, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." || part == "." || part == "" {
			return fmt.Errorf("%w: path %q has an empty, . or .. component", ErrBundle, name)
		}
	}
	if path.Clean(name) != name {
		return fmt.Errorf("%w: path %q is not clean", ErrBundle, name)
	}
	if len(name) > 4000 {
		return fmt.Errorf("%w: path %.40q… is %d bytes (at most 4000)", ErrBundle, name, len(name))
	}
	for _, part := range strings.Split(name, "/") {
		if len(part) > 255 {
			return fmt.Errorf("%w: path %q has a %d-byte component (at most 255)", ErrBundle, name, len(part))
		}
	}
	return nil
}

// LinkSink is a Sink that can also create symlinks and hard links. Extract
// refuses a bundle with links, before writing anything, when its sink is
// not a LinkSink.
type LinkSink interface {
	Sink
	// Symlink creates name as a symlink holding link (never followed).
	Symlink(target, name, link string) error
	// Link creates name as a hard link to the already extracted existing.
	Link(target, name, existing string) error
}

// ExtractOption adjusts Extract.
type ExtractOption func(*extractOptions)

type extractOptions struct{ keepSetID bool }

// KeepSetID keeps setuid and setgid bits; by default Extract strips them.
func KeepSetID() ExtractOption { return func(o *extractOptions) { o.keepSetID = true } }

// Stager is a Sink that can write into a staging area and move it into
// place only when the whole bundle was written and verified (DirSink is
// one). Extract uses it when the sink offers it.
type Stager interface {
	Stage() (staged Sink, commit func() error, discard func(), err error)
}

// Extract checks the whole bundle first (digest, manifest, every entry's
// name, type, link, size and sha256; no entry beneath a symlink or a file;
// hard links only to earlier files of the same target; no sparse entries)
// and only then writes its entries to sink: a bad bundle writes nothing.
// Both passes read one open file and hash it: a file swapped or changed
// after the check is caught. With a Stager sink the entries land in a
// staging area that moves into place only on success. Setuid and setgid
// bits are stripped unless KeepSetID.
func (b *Bundle) Extract(ctx context.Context, sink Sink, opts ...ExtractOption) error {
	var o extractOptions
	for _, opt := range opts {
		opt(&o)
	}
	f, err := os.Open(b.Path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBundle, err)
	}
	defer f.Close()
	check := &Bundle{Path: b.Path}
	sum, err := check.walkFile(f, func(*tar.Header, *BundleFile, io.Reader) error { return ctx.Err() })
	if err != nil {
		return err
	}
	if b.SHA256 != "" && sum != b.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, expected %s", ErrBundle, b.Path, sum, b.SHA256)
	}
	for _, f := range check.Manifest.Files {
		if _, canLink := sink.(LinkSink); f.Type != EntryFile && !canLink {
			return fmt.Errorf("%w: %s/%s is a %s, and this sink (%T) writes regular files only", ErrBundle, f.Target, f.Path, f.Type, sink)
		}
	}
	commit, discard := func() error { return nil }, func() {}
	if st, ok := sink.(Stager); ok {
		if sink, commit, discard, err = st.Stage(); err != nil {
			return err
		}
	}
	ls, _ := sink.(LinkSink)
	again, err := check.walkFile(f, func(_ *tar.Header, f *BundleFile, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch f.Type {
		case EntrySymlink:
			return ls.Symlink(f.Target, f.Path, f.Link)
		case EntryHardlink:
			return ls.Link(f.Target, f.Path, f.Link)
		}
		mode := f.Mode
		if !o.keepSetID {
			mode &^= fs.ModeSetuid | fs.ModeSetgid
		}
		return sink.WriteFile(f.Target, f.Path, mode, r)
	})
	if err == nil && again != sum {
		err = fmt.Errorf("%w: %s changed while it was extracted (sha256 %s, then %s)", ErrBundle, b.Path, sum, again)
	}
	if err != nil {
		discard()
		return err
	}
	return commit()
}

// checkManifest validates every entry on its own and against the others,
// and returns the entries by tar name.
func checkManifest(m Manifest) (map[string]*BundleFile, error) {
	want := map[string]*BundleFile{}
	for i := range m.Files {
		bf := &m.Files[i]
		if err := checkName(bf.Target, bf.Path); err != nil {
			return nil, err
		}
		name := bf.Target + "/" + bf.Path
		if _, dup := want[name]; dup {
			return nil, fmt.Errorf("%w: manifest lists %q twice", ErrBundle, name)
		}
		if bf.Mode&^modeBits != 0 {
			return nil, fmt.Errorf("%w: %q has mode %v; only permission, setuid, setgid and sticky bits are allowed", ErrBundle, name, bf.Mode)
		}
		switch bf.Type {
		case EntryFile:
			if bf.Link != "" {
				return nil, fmt.Errorf("%w: regular file %q has a link", ErrBundle, name)
			}
		case EntrySymlink:
			if bf.Link == "" || len(bf.Link) > 4095 || strings.ContainsRune(bf.Link, 0) || bf.Size != 0 {
				return nil, fmt.Errorf("%w: symlink %q: target %q must be 1–4095 bytes without NUL, size 0", ErrBundle, name, bf.Link)
			}
		case EntryHardlink:
			to, ok := want[bf.Target+"/"+bf.Link]
			if !ok || to.Type != EntryFile || bf.Size != 0 {
				return nil, fmt.Errorf("%w: hard link %q must point to an earlier regular file of target %s (got %q)", ErrBundle, name, bf.Target, bf.Link)
			}
		default:
			return nil, fmt.Errorf("%w: %q has type %q; use file, symlink or hardlink", ErrBundle, name, bf.Type)
		}
		want[name] = bf
	}
	// Nothing is written through a link or beneath a file: no entry's
	// parent is another entry.
	for name, bf := range want {
		for dir := path.Dir(name); dir != bf.Target && dir != "."; dir = path.Dir(dir) {
			if parent, ok := want[dir]; ok {
				kind := "regular file"
				if parent.Type != EntryFile {
					kind = string(parent.Type)
				}
				return nil, fmt.Errorf("%w: %q lies beneath %q, a %s; nothing is written through a link or beneath a file", ErrBundle, name, dir, kind)
			}
		}
	}
	return want, nil
}

// matchEntry checks a tar header against its manifest entry.
func matchEntry(h *tar.Header, bf *BundleFile) error {
	wantFlag, wantLink := byte(tar.TypeReg), ""
	switch bf.Type {
	case EntrySymlink:
		wantFlag, wantLink = tar.TypeSymlink, bf.Link
	case EntryHardlink:
		wantFlag, wantLink = tar.TypeLink, bf.Target+"/"+bf.Link
	}
	if h.Typeflag != wantFlag {
		return fmt.Errorf("%w: entry %q is a %s, the manifest says %s (devices, FIFOs and directories are never allowed)", ErrBundle, h.Name, typeName(h.Typeflag), typeName(wantFlag))
	}
	if h.Linkname != wantLink {
		return fmt.Errorf("%w: entry %q links to %q, the manifest says %q", ErrBundle, h.Name, h.Linkname, wantLink)
	}
	return nil
}

// DirSink writes a bundle into host directories, one per target, confined
// to them (os.Root: no path resolves outside its directory). It is a
// LinkSink: symlinks are created as entries and never followed, an existing
// entry of the same name is replaced, never written through.
type DirSink map[string]string

func (d DirSink) open(target, name string) (*os.Root, error) {
	dir, ok := d[target]
	if !ok {
		return nil, fmt.Errorf("%w: no directory for target %q", ErrBundle, target)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if parent := path.Dir(name); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			root.Close()
			return nil, err
		}
	}
	// Replace, never write through, whatever is there (e.g. a symlink).
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		root.Close()
		return nil, err
	}
	return root, nil
}

// WriteFile implements Sink.
func (d DirSink) WriteFile(target, name string, mode fs.FileMode, r io.Reader) error {
	root, err := d.open(target, name)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode.Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(name, mode&modeBits)
	}
	return err
}

// Symlink implements LinkSink.
func (d DirSink) Symlink(target, name, link string) error {
	root, err := d.open(target, name)
	if err != nil {
		return err
	}
	defer root.Close()
	return root.Symlink(link, name)
}

// Link implements LinkSink.
func (d DirSink) Link(target, name, existing string) error {
	root, err := d.open(target, name)
	if err != nil {
		return err
	}
	defer root.Close()
	return root.Link(existing, name)
}

// Stage implements Stager: each target directory gets a staging directory
// inside it (so the final moves are renames on one filesystem); commit
// moves every staged entry into place, discard removes the staging.
func (d DirSink) Stage() (Sink, func() error, func(), error) {
	staged := DirSink{}
	discard := func() {
		for _, s := range staged {
			os.RemoveAll(s)
		}
	}
	for target, dir := range d {
		s, err := os.MkdirTemp(dir, ".ultracloud-staging-")
		if err != nil {
			discard()
			return nil, nil, nil, err
		}
		staged[target] = s
	}
	commit := func() error {
		defer discard()
		for target, dir := range d {
			if err := moveInto(staged[target], dir); err != nil {
				return fmt.Errorf("%w: move %s into place: %v", ErrBundle, target, err)
			}
		}
		return nil
	}
	return staged, commit, discard, nil
}

// moveInto moves the tree under from into to: directories are merged,
// everything else replaces what is there by rename (never through a link).
func moveInto(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == from {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			if st, err := os.Lstat(dst); err == nil && !st.IsDir() {
				if err := os.Remove(dst); err != nil {
					return err
				}
			}
			return os.MkdirAll(dst, 0o755)
		}
		if st, err := os.Lstat(dst); err == nil && st.IsDir() {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		}
		return os.Rename(p, dst)
	})
}
