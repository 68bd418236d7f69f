package iso

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/image"
)

// A file whose directory record claims 4 GiB in a small ISO is refused
// before anything is read (it used to return 4 GiB at 9.5 GiB RSS).
func TestISOFileLargerThanImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.iso")
	err := Build(context.Background(), p, Options{Files: map[string]image.Source{"/LIAR.TXT": {Data: []byte("small")}},
		EFIFiles: map[string]image.Source{"/EFI/BOOT/BOOTX64.EFI": {Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	patched := 0
	for i := bytes.Index(data, []byte("LIAR.TXT")); i >= 0; {
		rec := i - 33 // the name follows the 33-byte fixed part of the record
		if rec >= 0 && binary.LittleEndian.Uint32(data[rec+10:]) == 5 {
			binary.LittleEndian.PutUint32(data[rec+10:], 0xFFFFF000)
			binary.BigEndian.PutUint32(data[rec+14:], 0xFFFFF000)
			patched++
		}
		next := bytes.Index(data[i+1:], []byte("LIAR.TXT"))
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if patched == 0 {
		t.Fatal("no directory record of LIAR.TXT found to patch")
	}
	os.WriteFile(p, data, 0o644)
	iso, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close()
	if _, err := iso.ReadFile("/LIAR.TXT"); !errors.Is(err, ErrISO) || !strings.Contains(err.Error(), "claims") {
		t.Fatalf("a 4 GiB claim in a %d-byte image: %v", len(data), err)
	}
}
