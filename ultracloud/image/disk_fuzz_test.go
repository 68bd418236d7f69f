package image

import (
	"os"
	"path/filepath"
	"testing"
)

// Corrupted disk images never panic or hang OpenDisk.
func FuzzOpenDisk(f *testing.F) {
	f.Add(make([]byte, 34*512))
	p := filepath.Join(f.TempDir(), "f.img") // one file, rewritten per input
	f.Fuzz(func(t *testing.T, data []byte) {
		os.WriteFile(p, data, 0o644)
		d, err := OpenDisk(p)
		if err != nil {
			return
		}
		for _, part := range d.Partitions {
			d.ReadDir(part.Index, "/")
		}
		d.Close()
	})
}
