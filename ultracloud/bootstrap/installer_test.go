package bootstrap

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// craftBundle writes a bundle with arbitrary tar entries after a manifest
// that lists the given files: it is how a hostile bundle looks.
func craftBundle(t testing.TB, m Manifest, entries []*tar.Header, bodies map[string]string) string {
	return craftBundleIn(t.TempDir(), m, entries, bodies)
}

// craftBundleIn is craftBundle writing into dir.
func craftBundleIn(dir string, m Manifest, entries []*tar.Header, bodies map[string]string) string {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	md, _ := json.Marshal(m)
	tw.WriteHeader(&tar.Header{Name: manifestName, Size: int64(len(md)), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write(md)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(bodies[h.Name]))
		}
		tw.WriteHeader(h)
		io.WriteString(tw, bodies[h.Name])
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(dir, "hostile.tar.zst")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func symOf(target, name, link string) BundleFile {
	return BundleFile{Target: target, Path: name, Type: EntrySymlink, Link: link, Mode: 0o777}
}

func linkOf(target, name, existing string) BundleFile {
	return BundleFile{Target: target, Path: name, Type: EntryHardlink, Link: existing, Mode: 0o644}
}

func symHdr(name, link string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: link, Mode: 0o777}
}

func entryOf(target, name, body string) BundleFile {
	return BundleFile{Target: target, Path: name, Mode: 0o644, Size: int64(len(body)), SHA256: sha256Hex([]byte(body))}
}

func TestExtractRefusesHostileBundles(t *testing.T) {
	ok := entryOf("root", "etc/ok", "fine")
	okHdr := &tar.Header{Name: "root/etc/ok", Typeflag: tar.TypeReg, Mode: 0o644}
	cases := []struct {
		name    string
		files   []BundleFile
		entries []*tar.Header
		bodies  map[string]string
		want    string
	}{
		{"dotdot", []BundleFile{ok, entryOf("root", "../x", "x")}, []*tar.Header{okHdr, {Name: "root/../x", Typeflag: tar.TypeReg}}, map[string]string{"root/etc/ok": "fine", "root/../x": "x"}, ".."},
		{"absolute", []BundleFile{ok, entryOf("root", "/etc/x", "x")}, nil, nil, "must be relative"},
		{"symlink not in manifest", []BundleFile{ok}, []*tar.Header{{Name: "root/link", Typeflag: tar.TypeSymlink, Linkname: "/"}}, nil, "not in the manifest"},
		{"symlink then file through it", []BundleFile{ok, symOf("root", "link", "/etc"), entryOf("root", "link/passwd", "pw")}, []*tar.Header{okHdr, symHdr("root/link", "/etc"), {Name: "root/link/passwd", Typeflag: tar.TypeReg}}, map[string]string{"root/etc/ok": "fine", "root/link/passwd": "pw"}, `beneath "root/link", a symlink`},
		{"relative symlink then file through it", []BundleFile{ok, symOf("root", "l", "etc"), entryOf("root", "l/ok2", "pw")}, []*tar.Header{okHdr, symHdr("root/l", "etc"), {Name: "root/l/ok2", Typeflag: tar.TypeReg}}, map[string]string{"root/etc/ok": "fine", "root/l/ok2": "pw"}, "a symlink"},
		{"dotdot symlink then file through it", []BundleFile{symOf("root", "up", ".."), entryOf("root", "up/x", "x")}, []*tar.Header{symHdr("root/up", ".."), {Name: "root/up/x", Typeflag: tar.TypeReg}}, map[string]string{"root/up/x": "x"}, "a symlink"},
		{"file then file beneath it", []BundleFile{entryOf("root", "a", "a"), entryOf("root", "a/b", "b")}, []*tar.Header{{Name: "root/a", Typeflag: tar.TypeReg}, {Name: "root/a/b", Typeflag: tar.TypeReg}}, map[string]string{"root/a": "a", "root/a/b": "b"}, "a regular file"},
		{"hard link outside", []BundleFile{ok, linkOf("root", "hard", "../../etc/passwd")}, []*tar.Header{okHdr, {Name: "root/hard", Typeflag: tar.TypeLink, Linkname: "root/../../etc/passwd"}}, map[string]string{"root/etc/ok": "fine"}, "earlier regular file"},
		{"hard link to a later entry", []BundleFile{linkOf("root", "hard", "etc/ok"), ok}, []*tar.Header{{Name: "root/hard", Typeflag: tar.TypeLink, Linkname: "root/etc/ok"}, okHdr}, map[string]string{"root/etc/ok": "fine"}, "earlier regular file"},
		{"hard link to a symlink", []BundleFile{symOf("root", "s", "/etc/shadow"), linkOf("root", "hard", "s")}, []*tar.Header{symHdr("root/s", "/etc/shadow"), {Name: "root/hard", Typeflag: tar.TypeLink, Linkname: "root/s"}}, nil, "earlier regular file"},
		{"hard link across targets", []BundleFile{ok, linkOf("esp", "hard", "etc/ok")}, []*tar.Header{okHdr, {Name: "esp/hard", Typeflag: tar.TypeLink, Linkname: "root/etc/ok"}}, map[string]string{"root/etc/ok": "fine"}, "target esp"},
		{"hard link not as the manifest says", []BundleFile{ok, linkOf("root", "hard", "etc/ok")}, []*tar.Header{okHdr, {Name: "root/hard", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, map[string]string{"root/etc/ok": "fine"}, "links to"},
		{"symlink target not as the manifest says", []BundleFile{symOf("root", "s", "/nix/store/a")}, []*tar.Header{symHdr("root/s", "/etc")}, nil, "links to"},
		{"symlink with NUL", []BundleFile{symOf("root", "s", "a\x00b")}, nil, nil, "without NUL"},
		{"char device", []BundleFile{ok}, []*tar.Header{{Name: "root/etc/ok", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}}, nil, "device node"},
		{"device type in manifest", []BundleFile{{Target: "root", Path: "dev/mem", Type: "chardev"}}, nil, nil, `type "chardev"`},
		{"device mode in manifest", []BundleFile{{Target: "root", Path: "dev/mem", Mode: fs.ModeDevice | 0o644}}, nil, nil, "only permission"},
		{"not in manifest", []BundleFile{ok}, []*tar.Header{okHdr, {Name: "root/extra", Typeflag: tar.TypeReg}}, map[string]string{"root/etc/ok": "fine", "root/extra": "x"}, "not in the manifest"},
		{"wrong content", []BundleFile{ok}, []*tar.Header{okHdr}, map[string]string{"root/etc/ok": "FINE"}, "sha256"},
		{"missing file", []BundleFile{ok, entryOf("esp", "a", "a")}, []*tar.Header{okHdr}, map[string]string{"root/etc/ok": "fine"}, "lacks"},
		{"bad target", []BundleFile{entryOf("home", "x", "x")}, nil, nil, `target "home"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := craftBundle(t, Manifest{SystemID: "x", Files: c.files}, c.entries, c.bodies)
			outside := t.TempDir()
			dirs := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
			err := (&Bundle{Path: p}).Extract(context.Background(), dirs)
			if !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
			for _, d := range []string{dirs[TargetRoot], dirs[TargetESP], outside} {
				ents, _ := os.ReadDir(d)
				if len(ents) != 0 {
					t.Fatalf("something was written to %s: %v", d, ents)
				}
			}
		})
	}
	// The good bundle extracts.
	good := systemBundle(t)
	dirs := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
	if err := good.Extract(context.Background(), dirs); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dirs[TargetRoot], "etc/ultracloud/system-id")); string(data) != "sys-42\n" {
		t.Fatal("good bundle")
	}
}

func TestPackBundleReproducible(t *testing.T) {
	files := map[string]string{"root/a": "a", "esp/b": "b"}
	a := writeBundle(t, "s", files)
	b := writeBundle(t, "s", files)
	if a.SHA256 != b.SHA256 {
		t.Fatal("same tree, different bundles")
	}
	if _, err := OpenBundle(a.Path, b.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBundle(a.Path, strings.Repeat("0", 64)); !errors.Is(err, ErrBundle) {
		t.Fatal("digest mismatch accepted")
	}
}

// Whatever the bytes, Extract writes nothing outside its directories and
// never panics.
func FuzzExtractBundle(f *testing.F) {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "root/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "root/x"), []byte("x"), 0o644)
	os.Symlink("/nix/store/abc-hello/bin/hello", filepath.Join(dir, "root/bin/hello"))
	os.Link(filepath.Join(dir, "root/x"), filepath.Join(dir, "root/y"))
	b, _ := PackBundle(context.Background(), dir, "s", f.TempDir())
	seed, _ := os.ReadFile(b.Path)
	f.Add(seed)
	work := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		base := fuzzDir(t, work)
		p := filepath.Join(base, "b.tar.zst")
		os.WriteFile(p, data, 0o644)
		sink := confinedSinks(t, base)
		(&Bundle{Path: p}).Extract(context.Background(), sink)
		assertConfined(t, base, sink)
	})
}

// Escape attempts built from links: a symlink named name pointing at link,
// then a file written at through. Whatever the names, nothing lands outside
// the sinks and no file is written through a symlink.
func FuzzExtractLinks(f *testing.F) {
	f.Add("link", "/etc", "link/passwd")
	f.Add("l", "..", "l/x")
	f.Add("a/b", "../../..", "a/b/c")
	f.Add("s", "s", "t")
	f.Add("etc", "/", "etc/shadow")
	work := f.TempDir()
	f.Fuzz(func(t *testing.T, name, link, through string) {
		files := []BundleFile{symOf("root", name, link), entryOf("root", through, "pwned")}
		hdrs := []*tar.Header{symHdr("root/"+name, link), {Name: "root/" + through, Typeflag: tar.TypeReg}}
		base := fuzzDir(t, work)
		p := craftBundleIn(base, Manifest{SystemID: "x", Files: files}, hdrs, map[string]string{"root/" + through: "pwned"})
		sink := confinedSinks(t, base)
		(&Bundle{Path: p}).Extract(context.Background(), sink)
		assertConfined(t, base, sink)
	})
}

// fuzzDir makes a fresh directory for one fuzz input under work and removes
// it when the input is done: fuzzing leaves no directory per input behind.
func fuzzDir(t *testing.T, work string) string {
	d, err := os.MkdirTemp(work, "in-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// confinedSinks makes root and esp sinks in base, beside a sentinel dir
// that must stay empty.
func confinedSinks(t *testing.T, base string) DirSink {
	sink := DirSink{TargetRoot: filepath.Join(base, "root"), TargetESP: filepath.Join(base, "esp")}
	for _, d := range []string{sink[TargetRoot], sink[TargetESP], filepath.Join(base, "outside")} {
		os.Mkdir(d, 0o755)
	}
	return sink
}

// assertConfined: base holds only the sinks, the sentinel (still empty) and
// the bundle file; below the sinks no regular file has a symlink among its
// parents, and no setuid or setgid bit is set.
func assertConfined(t *testing.T, base string, sink DirSink) {
	t.Helper()
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		switch e.Name() {
		case "root", "esp", "outside", "b.tar.zst", "hostile.tar.zst":
		default:
			t.Fatalf("written outside the sinks: %s", e.Name())
		}
	}
	if out, _ := os.ReadDir(filepath.Join(base, "outside")); len(out) != 0 {
		t.Fatalf("written outside the sinks: outside/%s", out[0].Name())
	}
	for _, dir := range sink {
		filepath.WalkDir(dir, func(q string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(dir, q)
			for p := filepath.Dir(rel); p != "."; p = filepath.Dir(p) {
				if st, err := os.Lstat(filepath.Join(dir, p)); err == nil && st.Mode()&fs.ModeSymlink != 0 {
					t.Fatalf("%s was written through the symlink %s", q, p)
				}
			}
			if info, _ := d.Info(); info != nil && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				t.Fatalf("%s kept a setuid/setgid bit", q)
			}
			return nil
		})
	}
}

// A tree shaped like a Nix closure (absolute and relative symlinks, a
// dangling one, a symlinked directory, hard links, a setuid file)
// round-trips; setuid/setgid are stripped unless asked for.
func TestBundleSymlinkedTreeRoundTrips(t *testing.T) {
	src := t.TempDir()
	store := "root/nix/store/0a1b2c-hello-2.12"
	for _, d := range []string{store + "/bin", store + "/lib", "root/run", "esp/EFI"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	write := func(name, data string, mode fs.FileMode) {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(store+"/bin/hello", "#!/bin/sh\necho hello\n", 0o755)
	write(store+"/lib/libhello.so.1.0", "ELF", 0o644)
	write(store+"/bin/su", "setuid", 0o755|fs.ModeSetuid)
	write("esp/EFI/boot.efi", "efi", 0o644)
	links := map[string]string{
		"root/run/current-system":     "/nix/store/0a1b2c-hello-2.12",
		store + "/lib/libhello.so.1":  "libhello.so.1.0",
		store + "/lib/libhello.so":    "libhello.so.1",
		store + "/bin/dangling":       "../nowhere",
		"root/nix/store/0a1b2c-alias": "0a1b2c-hello-2.12",
	}
	for name, link := range links {
		if err := os.Symlink(link, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, store+"/bin/hello"), filepath.Join(src, store+"/bin/hello-again")); err != nil {
		t.Fatal(err)
	}
	b, err := PackBundle(context.Background(), src, "sys-closure", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	types := map[EntryType]int{}
	for _, f := range b.Manifest.Files {
		types[f.Type]++
	}
	if types[EntrySymlink] != len(links) || types[EntryHardlink] != 1 {
		t.Fatalf("manifest types %v", types)
	}
	for _, keep := range []bool{false, true} {
		base := t.TempDir()
		sink := confinedSinks(t, base)
		var opts []ExtractOption
		if keep {
			opts = append(opts, KeepSetID())
		}
		if err := b.Extract(context.Background(), sink, opts...); err != nil {
			t.Fatal(err)
		}
		dst := func(name string) string {
			target, rel, _ := strings.Cut(name, "/")
			return filepath.Join(sink[target], rel)
		}
		for name, link := range links {
			if got, err := os.Readlink(dst(name)); err != nil || got != link {
				t.Errorf("%s: symlink %q %v, want %q", name, got, err, link)
			}
		}
		if data, err := os.ReadFile(dst(store + "/lib/libhello.so")); err != nil || string(data) != "ELF" {
			t.Errorf("symlink chain inside the tree: %q %v", data, err)
		}
		a, _ := os.Stat(dst(store + "/bin/hello"))
		c, _ := os.Stat(dst(store + "/bin/hello-again"))
		if a == nil || c == nil || !os.SameFile(a, c) || a.Mode().Perm() != 0o755 {
			t.Errorf("hard link not kept: %v %v", a, c)
		}
		su, _ := os.Stat(dst(store + "/bin/su"))
		if got := su.Mode()&fs.ModeSetuid != 0; got != keep {
			t.Errorf("KeepSetID=%v: setuid %v", keep, got)
		}
		if !keep {
			assertConfined(t, base, sink)
		}
	}
	// A sink that writes regular files only refuses the links before it
	// writes anything.
	var wrote []string
	plain := sinkFunc(func(target, name string, _ fs.FileMode, r io.Reader) error {
		wrote = append(wrote, name)
		return nil
	})
	if err := b.Extract(context.Background(), plain); !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), "writes regular files only") || len(wrote) != 0 {
		t.Fatalf("plain sink: %v, wrote %v", err, wrote)
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
