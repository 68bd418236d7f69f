package bootstrap

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
)

// A target that already carries a hostile GPT header (4 billion entries:
// go-diskfs would allocate them on open and die) is partitioned anyway:
// Apply clears the old headers first, as disko's sgdisk --zap-all does.
func TestApplyOverHostileGPT(t *testing.T) {
	img := sparse(t, 1<<30)
	h := make([]byte, 512)
	copy(h, "EFI PART")
	le := binary.LittleEndian
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], 1)
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], 0xFFFFFFFF)
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(h, 512)
	f.Close()
	p := loadPlan(t, "esp-root.json")
	targets := map[string]string{p.Disks[0].Name: img}
	if _, err := p.Apply(context.Background(), targets); err != nil {
		t.Fatal(err)
	}
	diff, err := p.Verify(context.Background(), targets)
	if err != nil || len(diff) != 0 {
		t.Fatalf("verify after apply: %v\n%s", err, diff)
	}
}
