package image

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func sample(t *testing.T) *Initramfs {
	t.Helper()
	i := NewInitramfs()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(i.AddFile("/init", []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(i.AddFile("etc/deep/nested/file", []byte("x"), 0o644))
	must(i.AddSymlink("bin/sh", "busybox"))
	must(i.AddDir("tmp", 0o1777))
	must(i.AddCharDev("dev/console", 0o600, 5, 1))
	return i
}

func TestInitramfsRoundTrip(t *testing.T) {
	data, err := sample(t).Bytes(false)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ReadInitramfs(data)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]InitramfsEntry{}
	var order []string
	for _, e := range entries {
		got[e.Path] = e
		order = append(order, e.Path)
	}
	want := "bin bin/sh dev dev/console etc etc/deep etc/deep/nested etc/deep/nested/file init tmp"
	if strings.Join(order, " ") != want {
		t.Fatalf("order %q", order)
	}
	if string(got["init"].Data) != "#!/bin/sh\necho hi\n" || got["init"].Mode != 0o755 {
		t.Fatalf("init %+v", got["init"])
	}
	if got["bin/sh"].Target != "busybox" || got["bin/sh"].Mode&fs.ModeSymlink == 0 {
		t.Fatalf("symlink %+v", got["bin/sh"])
	}
	if got["dev/console"].Mode&fs.ModeCharDevice == 0 || !got["etc/deep"].Mode.IsDir() {
		t.Fatal("types lost")
	}
}

func TestInitramfsReproducible(t *testing.T) {
	a, _ := sample(t).Bytes(true)
	b, _ := sample(t).Bytes(true)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same tree differ")
	}
	back, err := ReadInitramfs(a)
	if err != nil || len(back) != 10 {
		t.Fatalf("gzip read: %v %d", err, len(back))
	}
}

// The system's cpio tool (if present) agrees on the archive's contents.
func TestInitramfsReadableByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	data, _ := sample(t).Bytes(false)
	cmd := exec.Command("cpio", "-t")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etc/deep/nested/file") {
		t.Fatalf("%v %s", err, out)
	}
}

func TestInitramfsRefuses(t *testing.T) {
	i := NewInitramfs()
	cases := map[string]error{
		"dotdot":      i.AddFile("../etc/passwd", nil, 0o644),
		"root":        i.AddDir("/", 0o755),
		"empty link":  i.AddSymlink("x", ""),
		"file as dir": func() error { _ = i.AddFile("a", nil, 0o644); return i.AddFile("a/b", nil, 0o644) }(),
		"dir as file": func() error { _ = i.AddDir("d", 0o755); return i.AddFile("d", nil, 0o644) }(),
	}
	for name, err := range cases {
		if !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: want ErrBadEntry, got %v", name, err)
		}
	}
}

func TestInitramfsAddTree(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "lib/mods"), 0o755)
	os.WriteFile(filepath.Join(src, "lib/mods/a.ko"), []byte("ko"), 0o644)
	os.Symlink("mods", filepath.Join(src, "lib/m"))
	i := NewInitramfs()
	if err := i.AddTree("usr", src); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(i.Paths(), " "); got != "usr usr/lib usr/lib/m usr/lib/mods usr/lib/mods/a.ko" {
		t.Fatal(got)
	}
	fifo := filepath.Join(src, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	if err := NewInitramfs().AddTree("", src); !errors.Is(err, ErrBadEntry) || !strings.Contains(err.Error(), "pipe") {
		t.Fatalf("fifo accepted: %v", err)
	}
}

func FuzzReadInitramfs(f *testing.F) {
	i := NewInitramfs()
	i.AddFile("a", []byte("hello"), 0o644)
	i.AddSymlink("b", "a")
	data, _ := i.Bytes(false)
	f.Add(data)
	gz, _ := i.Bytes(true)
	f.Add(gz)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadInitramfs(data)
	})
}
