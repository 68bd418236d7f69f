package bootstrap

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// Errors of closure installation, for errors.Is.
var (
	// ErrMissingPath: the closure lacks a store path a present one
	// references; a node that cannot build cannot make it.
	ErrMissingPath = errors.New("missing store path")
	// ErrNarHash: a NAR does not hash to what its narinfo says.
	ErrNarHash = errors.New("NarHash mismatch")
)

// StoreDir is the Nix store every closure lives in.
const StoreDir = "/nix/store"

// InstalledPath is one store path a closure installation put in place.
type InstalledPath struct {
	StorePath  string   `json:"storePath"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
}

// InstallClosure installs the closure of top from cache, a Nix binary
// cache as `nix copy --to 'file://DIR?compression=none'` writes it
// (<hash>.narinfo per path, nar/<filehash>.nar), into store (StoreDir on
// a node; a directory standing in for it in tests). It never builds:
//
//   - every store path reachable from top through References must have a
//     narinfo, or it fails with ErrMissingPath naming each missing path
//     ("would need a build");
//   - each NAR is unpacked (go-nix's NAR reader) into a staging directory
//     while it is hashed; a NarHash or NarSize other than the narinfo's
//     fails with ErrNarHash and leaves nothing of that path;
//   - a path already in the store is kept when its NAR serialisation
//     hashes to the narinfo's NarHash, refused otherwise.
//
// It returns the installed paths, top first.
func InstallClosure(ctx context.Context, cache fs.FS, top, store string) ([]InstalledPath, error) {
	infos, err := readClosure(cache, top)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, err
	}
	var out []InstalledPath
	for _, ni := range infos {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if err := installPath(cache, ni, store); err != nil {
			return out, err
		}
		refs := make([]string, 0, len(ni.References))
		for _, r := range ni.References {
			refs = append(refs, StoreDir+"/"+r)
		}
		out = append(out, InstalledPath{StorePath: ni.StorePath, NarHash: ni.NarHash.String(), NarSize: ni.NarSize, References: refs})
	}
	return out, nil
}

// storeHash is the hash part of a store path (its narinfo's name).
func storeHash(p string) (string, error) {
	base, ok := strings.CutPrefix(p, StoreDir+"/")
	if !ok || strings.Contains(base, "/") || len(base) < 34 || base[32] != '-' {
		return "", fmt.Errorf("%q is not a store path such as %s/<32-char hash>-name", p, StoreDir)
	}
	return base[:32], nil
}

// readClosure reads the narinfo of top and of everything it references,
// in breadth-first order, listing every missing path at once.
func readClosure(cache fs.FS, top string) ([]*narinfo.NarInfo, error) {
	var infos []*narinfo.NarInfo
	var missing, problems []string
	seen := map[string]bool{top: true}
	queue := []string{top}
	referrer := map[string]string{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		h, err := storeHash(p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		f, err := cache.Open(h + ".narinfo")
		if errors.Is(err, fs.ErrNotExist) {
			by := ""
			if r := referrer[p]; r != "" {
				by = " (referenced by " + r + ")"
			}
			missing = append(missing, fmt.Sprintf("missing %s%s: would need a build", p, by))
			continue
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		ni, err := narinfo.Parse(io.LimitReader(f, 1<<20))
		f.Close()
		if err == nil && ni.StorePath != p {
			err = fmt.Errorf("it describes %s", ni.StorePath)
		}
		if err == nil && ni.NarHash == nil {
			err = errors.New("no NarHash")
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("narinfo of %s: %v", p, err))
			continue
		}
		infos = append(infos, ni)
		for _, r := range ni.References {
			rp := StoreDir + "/" + r
			if !seen[rp] {
				seen[rp] = true
				referrer[rp] = p
				queue = append(queue, rp)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("%w: the closure of %s is incomplete: %s", ErrMissingPath, top, strings.Join(missing, "; "))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("closure of %s: %s", top, strings.Join(problems, "; "))
	}
	return infos, nil
}

// narDigest checks what was hashed against the narinfo.
func narDigest(ni *narinfo.NarInfo, h hash.Hash, size uint64) error {
	got, err := nixhash.NewHashWithEncoding(nixhash.SHA256, h.Sum(nil), nixhash.NixBase32, true)
	if err != nil {
		return err
	}
	if ni.NarHash.Algo() != nixhash.SHA256 || !slices.Equal(ni.NarHash.Digest(), got.Digest()) || size != ni.NarSize {
		return fmt.Errorf("%w: %s: the NAR hashes to %s (%d bytes), its narinfo says %s (%d bytes)", ErrNarHash, ni.StorePath, got, size, ni.NarHash, ni.NarSize)
	}
	return nil
}

// countingWriter counts bytes.
type countingWriter struct{ n uint64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += uint64(len(p)); return len(p), nil }

func installPath(cache fs.FS, ni *narinfo.NarInfo, store string) error {
	name := path.Base(ni.StorePath)
	dst := filepath.Join(store, name)
	if _, err := os.Lstat(dst); err == nil {
		// Present: valid only if it serialises to the same NAR.
		h, n := sha256.New(), &countingWriter{}
		if err := nar.DumpPath(io.MultiWriter(h, n), dst); err != nil {
			return fmt.Errorf("%s: %w", ni.StorePath, err)
		}
		return narDigest(ni, h, n.n)
	}
	if ni.Compression != "" && ni.Compression != "none" {
		return fmt.Errorf("%s: NAR compressed with %s; export the closure with nix copy --to 'file://DIR?compression=none'", ni.StorePath, ni.Compression)
	}
	if ni.URL == "" || !fs.ValidPath(ni.URL) {
		return fmt.Errorf("%s: narinfo URL %q is not a file of the cache", ni.StorePath, ni.URL)
	}
	f, err := cache.Open(ni.URL)
	if err != nil {
		return fmt.Errorf("%s: %w", ni.StorePath, err)
	}
	defer f.Close()
	h, n := sha256.New(), &countingWriter{}
	stage := filepath.Join(store, ".stage-"+name)
	os.RemoveAll(stage)
	err = unpackNAR(io.TeeReader(f, io.MultiWriter(h, n)), stage)
	if err == nil {
		// Read to the end: trailing bytes count in the hash too.
		_, err = io.Copy(io.Discard, io.TeeReader(f, io.MultiWriter(h, n)))
	}
	if err == nil {
		err = narDigest(ni, h, n.n)
	}
	if err == nil {
		err = os.Rename(stage, dst)
	}
	if err != nil {
		os.RemoveAll(stage)
		if errors.Is(err, ErrNarHash) {
			return err
		}
		return fmt.Errorf("%s: %w", ni.StorePath, err)
	}
	return nil
}

// unpackNAR writes the NAR read from r at dst: a directory tree, a file or
// a symlink. Entries are created through os.Root, so none escapes dst.
func unpackNAR(r io.Reader, dst string) error {
	nr, err := nar.NewReader(r)
	if err != nil {
		return err
	}
	defer nr.Close()
	var root *os.Root
	defer func() {
		if root != nil {
			root.Close()
		}
	}()
	for {
		h, err := nr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Path == "/" {
			switch h.Type {
			case nar.TypeDirectory:
				if err := os.Mkdir(dst, 0o755); err != nil {
					return err
				}
				if root, err = os.OpenRoot(dst); err != nil {
					return err
				}
			case nar.TypeSymlink:
				return os.Symlink(h.LinkTarget, dst)
			case nar.TypeRegular:
				return writeNARFile(func(flag int, mode os.FileMode) (*os.File, error) { return os.OpenFile(dst, flag, mode) }, h, nr)
			}
			continue
		}
		if root == nil {
			return fmt.Errorf("NAR entry %s below a non-directory", h.Path)
		}
		rel := strings.TrimPrefix(h.Path, "/")
		switch h.Type {
		case nar.TypeDirectory:
			err = root.Mkdir(rel, 0o755)
		case nar.TypeSymlink:
			err = root.Symlink(h.LinkTarget, rel)
		case nar.TypeRegular:
			err = writeNARFile(func(flag int, mode os.FileMode) (*os.File, error) { return root.OpenFile(rel, flag, mode) }, h, nr)
		default:
			err = fmt.Errorf("NAR entry %s of type %s", h.Path, h.Type)
		}
		if err != nil {
			return err
		}
	}
}

func writeNARFile(open func(int, os.FileMode) (*os.File, error), h *nar.Header, r io.Reader) error {
	mode := os.FileMode(0o444)
	if h.Executable {
		mode = 0o555
	}
	f, err := open(os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
