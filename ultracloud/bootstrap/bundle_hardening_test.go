package bootstrap

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func emptyDirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		if len(ents) != 0 {
			t.Fatalf("something was written to %s: %v", d, ents)
		}
	}
}

// A bundle swapped on disk after OpenBundle checked it is caught: Extract
// hashes what it reads and compares with the digest it was opened with.
func TestExtractCatchesASwappedBundle(t *testing.T) {
	good := writeBundle(t, "s", map[string]string{"root/etc/x": "good"})
	evil := writeBundle(t, "s", map[string]string{"root/etc/x": "evil"})
	b, err := OpenBundle(good.Path, good.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(evil.Path)
	if err := os.WriteFile(good.Path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sink := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
	if err := b.Extract(context.Background(), sink); !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), "expected") {
		t.Fatalf("swapped bundle: %v", err)
	}
	emptyDirs(t, sink[TargetRoot], sink[TargetESP])
}

// Entries that could only fail while writing are refused before: a file
// beneath a file, over-long names; and a DirSink stages, so a failed
// extraction leaves the target as it was.
func TestExtractWritesAllOrNothing(t *testing.T) {
	long := strings.Repeat("n", 300)
	cases := []struct {
		name  string
		files []BundleFile
		want  string
	}{
		{"file beneath a file", []BundleFile{entryOf("root", "a", "a"), entryOf("root", "a/b", "b")}, "beneath"},
		{"300-byte name", []BundleFile{entryOf("root", long, "x")}, "300-byte component"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdrs []*tar.Header
			bodies := map[string]string{}
			for _, f := range c.files {
				hdrs = append(hdrs, &tar.Header{Name: f.Target + "/" + f.Path, Typeflag: tar.TypeReg, Mode: 0o644})
				bodies[f.Target+"/"+f.Path] = map[string]string{"a": "a", "a/b": "b", long: "x"}[f.Path]
			}
			p := craftBundle(t, Manifest{SystemID: "x", Files: c.files}, hdrs, bodies)
			sink := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
			if err := (&Bundle{Path: p}).Extract(context.Background(), sink); !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
			emptyDirs(t, sink[TargetRoot], sink[TargetESP])
		})
	}
	// Staging: discarded, the target is untouched; committed, it is there.
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "keep"), []byte("old"), 0o644)
	staged, commit, discard, err := DirSink{TargetRoot: root}.Stage()
	if err != nil {
		t.Fatal(err)
	}
	staged.WriteFile(TargetRoot, "keep", 0o644, strings.NewReader("new"))
	staged.WriteFile(TargetRoot, "d/f", 0o644, strings.NewReader("f"))
	discard()
	if data, _ := os.ReadFile(filepath.Join(root, "keep")); string(data) != "old" {
		t.Fatal("a discarded staging changed the target")
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Fatalf("staging left behind: %v", ents)
	}
	staged, commit, _, _ = DirSink{TargetRoot: root}.Stage()
	staged.WriteFile(TargetRoot, "keep", 0o644, strings.NewReader("new"))
	staged.WriteFile(TargetRoot, "d/f", 0o644, strings.NewReader("f"))
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "keep")); string(data) != "new" {
		t.Fatal("commit did not move the file into place")
	}
	if ents, _ := os.ReadDir(root); len(ents) != 2 {
		t.Fatalf("after commit: %v", ents)
	}
}

// ustarBlock is one raw ustar header block.
func ustarBlock(name string, typeflag byte, size int) []byte {
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], fmt.Sprintf("%07o\x00", 0o644))
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:], "ustar\x00")
	copy(b[263:], "00")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// A PAX-sparse entry (GNU sparse 1.0: a few hundred bytes that expand to
// 256 MiB) is refused before anything is written. archive/tar cannot write
// one, so the bytes are laid out by hand.
func TestExtractRefusesSparseEntries(t *testing.T) {
	const real = 256 << 20
	sum := sha256Hex(append(make([]byte, real-1), 'x'))
	md := []byte(fmt.Sprintf(`{"systemID":"x","files":[{"target":"root","path":"big","mode":420,"size":%d,"sha256":"%s"}]}`, real, sum))
	rec := func(k, v string) string {
		line := " " + k + "=" + v + "\n"
		n := len(line) + 1
		for len(fmt.Sprint(n))+len(line) != n {
			n = len(fmt.Sprint(n)) + len(line)
		}
		return fmt.Sprint(n) + line
	}
	pax := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") + rec("GNU.sparse.name", "root/big") + rec("GNU.sparse.realsize", fmt.Sprint(real))
	sparseMap := pad([]byte(fmt.Sprintf("1\n%d\n1\n", real-1)))
	data := append(sparseMap, 'x')
	var raw []byte
	raw = append(raw, ustarBlock(manifestName, '0', len(md))...)
	raw = append(raw, pad(md)...)
	raw = append(raw, ustarBlock("PaxHeaders/big", 'x', len(pax))...)
	raw = append(raw, pad([]byte(pax))...)
	raw = append(raw, ustarBlock("GNUSparseFile.0/big", '0', len(data))...)
	raw = append(raw, pad(data)...)
	raw = append(raw, make([]byte, 1024)...)
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	p := filepath.Join(t.TempDir(), "sparse.tar.zst")
	os.WriteFile(p, buf.Bytes(), 0o644)
	t.Logf("sparse bundle: %d bytes", buf.Len())
	sink := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
	err := (&Bundle{Path: p}).Extract(context.Background(), sink)
	if !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("sparse bundle: %v", err)
	}
	t.Logf("refused: %v", err)
	emptyDirs(t, sink[TargetRoot], sink[TargetESP])
}
