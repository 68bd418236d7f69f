package iso

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/image"
)

// benchTree writes a tree like an installer's: a few large files and many
// small ones (about 48 MiB).
func benchTree(b *testing.B) string {
	dir := b.TempDir()
	for i := range 3 {
		data := make([]byte, 16<<20)
		for j := range data {
			data[j] = byte(i + j)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("big%d.bin", i)), data, 0o644)
	}
	for i := range 200 {
		sub := filepath.Join(dir, "nix", "store", fmt.Sprintf("pkg%03d", i/20))
		os.MkdirAll(sub, 0o755)
		os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%d.txt", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644)
	}
	return dir
}

func treeSources(dir string) map[string]image.Source {
	files := map[string]image.Source{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files["/"+rel] = image.Source{Path: p}
		}
		return nil
	})
	return files
}

// BenchmarkBuildISO compares BuildISO with `xorriso -as mkisofs -R` on the
// same tree, in one run:
//
//	go test -bench BuildISO -run '^$' ./ultracloud/image
func BenchmarkBuildISO(b *testing.B) {
	tree := benchTree(b)
	out := filepath.Join(b.TempDir(), "out.iso")
	b.Run("testkit", func(b *testing.B) {
		files := treeSources(tree)
		for range b.N {
			if err := Build(context.Background(), out, Options{VolumeID: "BENCH", Files: files}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("xorriso", func(b *testing.B) {
		if _, err := exec.LookPath("xorriso"); err != nil {
			b.Skip("xorriso not installed")
		}
		for range b.N {
			os.Remove(out)
			if o, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "BENCH", "-o", out, tree).CombinedOutput(); err != nil {
				b.Fatalf("%v %s", err, o)
			}
		}
	})
}
