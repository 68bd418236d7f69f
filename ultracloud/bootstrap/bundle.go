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

	"github.com/klauspost/compress/zstd"
)

// ErrBundle: a bundle that is corrupt, does not match its digest, or holds
// an entry Extract refuses.
var ErrBundle = errors.New("bundle")

// Bundle targets: the parts of a bundle and where an installer puts them.
const (
	TargetESP  = "esp"  // the EFI system partition (mountpoint /boot)
	TargetRoot = "root" // the root filesystem (mountpoint /)
)

const manifestName = "MANIFEST.json"

// BundleFile is one manifest entry.
type BundleFile struct {
	Target string      `json:"target"` // esp | root
	Path   string      `json:"path"`   // relative to the target
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256"`
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
// root/; every regular file under them is packed (symlinks, devices and
// other types are refused). The output is reproducible for the same tree.
func PackBundle(ctx context.Context, dir, systemID, outDir string) (*Bundle, error) {
	var m Manifest
	m.SystemID = systemID
	for _, target := range []string{TargetESP, TargetRoot} {
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
			if !info.Mode().IsRegular() {
				return fmt.Errorf("%w: %s is a %v; bundles hold regular files only", ErrBundle, p, info.Mode().Type())
			}
			rel, _ := filepath.Rel(base, p)
			sum, err := fileSHA(p)
			if err != nil {
				return err
			}
			m.Files = append(m.Files, BundleFile{Target: target, Path: filepath.ToSlash(rel), Mode: info.Mode().Perm(), Size: info.Size(), SHA256: sum})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%w: %s has no files under esp/ or root/", ErrBundle, dir)
	}
	sort.Slice(m.Files, func(i, j int) bool {
		return m.Files[i].Target+"/"+m.Files[i].Path < m.Files[j].Target+"/"+m.Files[j].Path
	})
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
		return &tar.Header{Name: name, Size: size, Mode: int64(mode), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(manifestName, int64(len(mdata)), 0o644)); err != nil {
		return nil, err
	}
	tw.Write(mdata)
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(hdr(f.Target+"/"+f.Path, f.Size, f.Mode)); err != nil {
			return nil, err
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

func fileSHA(p string) (string, error) {
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
	sum, err := fileSHA(p)
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
	want := map[string]*BundleFile{}
	for i := range m.Files {
		bf := &m.Files[i]
		if err := checkName(bf.Target, bf.Path); err != nil {
			return err
		}
		want[bf.Target+"/"+bf.Path] = bf
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
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: entry %q is a %s; only regular files are allowed (no links, devices or directories)", ErrBundle, h.Name, typeName(h.Typeflag))
		}
		bf, ok := want[h.Name]
		if !ok {
			return fmt.Errorf("%w: entry %q is not in the manifest", ErrBundle, h.Name)
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
		if got := hex.EncodeToString(hs.Sum(nil)); got != bf.SHA256 {
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
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("type %q", t)
}

// checkName refuses targets other than esp/root, absolute paths and "..".
func checkName(target, name string) error {
	if target != TargetESP && target != TargetRoot {
		return fmt.Errorf("%w: target %q; use esp or root", ErrBundle, target)
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
	return nil
}

// Extract checks the whole bundle first (digest, manifest, every entry's
// name, type, size and sha256) and only then writes its files to sink: a
// bad bundle writes nothing.
func (b *Bundle) Extract(ctx context.Context, sink Sink) error {
	check := &Bundle{Path: b.Path}
	if err := check.walk(func(*tar.Header, *BundleFile, io.Reader) error { return ctx.Err() }); err != nil {
		return err
	}
	return check.walk(func(_ *tar.Header, f *BundleFile, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return sink.WriteFile(f.Target, f.Path, f.Mode, r)
	})
}

// DirSink writes a bundle into host directories, one per target, confined
// to them (os.Root).
type DirSink map[string]string

// WriteFile implements Sink.
func (d DirSink) WriteFile(target, name string, mode fs.FileMode, r io.Reader) error {
	dir, ok := d[target]
	if !ok {
		return fmt.Errorf("%w: no directory for target %q", ErrBundle, target)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil && path.Dir(name) != "." {
		return err
	}
	f, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode.Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
