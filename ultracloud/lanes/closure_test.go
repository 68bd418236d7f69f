package lanes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// smokeClosure builds the default system with real nix and exports it.
func smokeClosure(t *testing.T) (top string, paths []string, cache string) {
	t.Helper()
	if _, err := exec.LookPath("nix"); err != nil {
		t.Skip("needs nix (make deps installs nix-bin)")
	}
	ctx := context.Background()
	top, err := BuildSmokeSystem(ctx, "", t.TempDir(), t.Name()+time.Now().Format(time.RFC3339Nano))
	if err != nil {
		t.Fatal(err)
	}
	if paths, err = ClosureOf(ctx, "", top); err != nil {
		t.Fatal(err)
	}
	cache = t.TempDir()
	if err := ExportClosure(ctx, "", top, cache); err != nil {
		t.Fatal(err)
	}
	return top, paths, cache
}

func pathNamed(paths []string, suffix string) string {
	for _, p := range paths {
		if strings.HasSuffix(p, suffix) {
			return p
		}
	}
	return ""
}

// A closure built by real nix installs from its binary cache into a store
// byte for byte (files and symlinks), and every way it can be wrong is
// refused: a path left out, a corrupted NAR, a store path changed after
// its install.
func TestInstallClosure(t *testing.T) {
	top, paths, cache := smokeClosure(t)
	if len(paths) != 3 {
		t.Fatalf("closure %v, want 3 paths", paths)
	}
	ctx := context.Background()
	store := t.TempDir()
	got, err := bootstrap.InstallClosure(ctx, os.DirFS(cache), top, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].StorePath != top || !strings.HasPrefix(got[0].NarHash, "sha256:") {
		t.Fatalf("installed %+v", got)
	}
	want, err := storeManifest(ctx, "", paths)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, p := range paths {
		lines, err := treeManifest(store, filepath.Base(p))
		if err != nil {
			t.Fatal(err)
		}
		have = append(have, lines...)
	}
	slices.Sort(have)
	if d := diffLines(want, have); len(d) > 0 || len(want) < 4 {
		t.Fatalf("installed store differs from nix's (%d entries): %v", len(want), d)
	}
	// Again: present paths are verified, not rewritten.
	if _, err := bootstrap.InstallClosure(ctx, os.DirFS(cache), top, store); err != nil {
		t.Fatalf("second install: %v", err)
	}

	dep, lib := pathNamed(paths, "-ultracloud-smoke-dep"), pathNamed(paths, "-ultracloud-smoke-lib")
	t.Run("missing path", func(t *testing.T) {
		os.Rename(filepath.Join(cache, narinfoName(dep)), filepath.Join(cache, narinfoName(dep)+".gone"))
		defer os.Rename(filepath.Join(cache, narinfoName(dep)+".gone"), filepath.Join(cache, narinfoName(dep)))
		_, err := bootstrap.InstallClosure(ctx, os.DirFS(cache), top, t.TempDir())
		if !errors.Is(err, bootstrap.ErrMissingPath) || !strings.Contains(err.Error(), "missing "+dep) || !strings.Contains(err.Error(), "would need a build") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("corrupt NAR", func(t *testing.T) {
		fresh := t.TempDir()
		nar := narFile(t, cache, lib)
		data, _ := os.ReadFile(nar)
		bad := append([]byte(nil), data...)
		i := strings.Index(string(bad), "hello")
		if i < 0 {
			i = len(bad) / 2
		}
		bad[i] ^= 0x20
		os.WriteFile(nar, bad, 0o644)
		defer os.WriteFile(nar, data, 0o644)
		_, err := bootstrap.InstallClosure(ctx, os.DirFS(cache), top, fresh)
		if !errors.Is(err, bootstrap.ErrNarHash) || !strings.Contains(err.Error(), lib) {
			t.Fatalf("%v", err)
		}
		if _, err := os.Lstat(filepath.Join(fresh, filepath.Base(lib))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a path that failed its hash is in the store: %v", err)
		}
	})
	t.Run("store path changed", func(t *testing.T) {
		f := filepath.Join(store, filepath.Base(lib), "share", "greeting")
		os.Chmod(f, 0o644)
		os.WriteFile(f, []byte("tampered\n"), 0o644)
		if _, err := bootstrap.InstallClosure(ctx, os.DirFS(cache), top, store); !errors.Is(err, bootstrap.ErrNarHash) {
			t.Fatalf("%v", err)
		}
	})
}

// treeManifest lists a directory tree as storeManifest does, from the
// filesystem (what the installer wrote).
func treeManifest(store, name string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(store, name), func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(store, q)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(q)
			if err != nil {
				return err
			}
			out = append(out, "link "+t+" "+rel)
		case d.Type().IsRegular():
			data, err := os.ReadFile(q)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			out = append(out, "file "+hex.EncodeToString(sum[:])+" "+rel)
		}
		return nil
	})
	return out, err
}

func narinfoName(p string) string { return filepath.Base(p)[:32] + ".narinfo" }

// narFile returns the NAR of store path p in cache (its narinfo's URL).
func narFile(t *testing.T, cache, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cache, narinfoName(p)))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if u, ok := strings.CutPrefix(line, "URL: "); ok {
			return filepath.Join(cache, u)
		}
	}
	t.Fatalf("no URL in the narinfo of %s", p)
	return ""
}
