package main

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/image"
	"github.com/photoncloud/testkit/ultracloud/image/iso"
)

const samplePlan = "../../ultracloud/bootstrap/testdata/disko/esp-swap-root.json"

func TestInspectDiskAgainstPlan(t *testing.T) {
	data, _ := os.ReadFile(samplePlan)
	plan, err := bootstrap.ParsePlan(data)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(img)
	f.Truncate(1 << 30)
	f.Close()
	if _, err := plan.Apply(context.Background(), map[string]string{"main": img}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "inspect", "disk", img, "--plan", samplePlan)
	if err != nil || !strings.Contains(out, "images match the plan") || !strings.Contains(out, "disk-main-root") {
		t.Fatalf("%v\n%s", err, out)
	}
	// A plan the image does not follow: exit code 1 and the difference named.
	other := filepath.Join(t.TempDir(), "other.json")
	os.WriteFile(other, []byte(strings.Replace(string(data), `"256M"`, `"300M"`, 1)), 0o644)
	out, err = run(t, "inspect", "disk", img, "--plan", other)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "main/ESP: size") {
		t.Fatalf("mismatch: %v\n%s", err, out)
	}
	if out, err := run(t, "inspect", "disk", img, "--part", "1", "--ls", "/"); err != nil {
		t.Fatalf("ls: %v %s", err, out)
	}
}

func TestInspectISO(t *testing.T) {
	isoPath := filepath.Join(t.TempDir(), "x.iso")
	if err := iso.Build(context.Background(), isoPath, iso.Options{VolumeID: "CLI",
		Files:    map[string]image.Source{"/hello.txt": {Data: []byte("hi\n")}},
		EFIFiles: map[string]image.Source{"/EFI/BOOT/BOOTX64.EFI": {Data: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "inspect", "iso", isoPath)
	if err != nil || !strings.Contains(out, `volume "CLI"`) || !strings.Contains(out, "platform efi") || !strings.Contains(out, "/hello.txt") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = run(t, "inspect", "iso", isoPath, "--cat", "/hello.txt")
	if err != nil || out != "hi\n" {
		t.Fatalf("cat: %q %v", out, err)
	}
}

func TestDiskoLayoutNeedsSize(t *testing.T) {
	if _, err := run(t, "disko", "layout", "../../ultracloud/bootstrap/testdata/disko/esp-root.json"); err == nil || !strings.Contains(err.Error(), "--disk-size") {
		t.Fatalf("%v", err)
	}
}

// `inspect disk` on a hostile GPT (4 billion entries: go-diskfs would
// allocate them and die) answers with one line and a non-zero exit, at
// once.
func TestInspectHostileDisk(t *testing.T) {
	img := filepath.Join(t.TempDir(), "hostile.img")
	h := make([]byte, 512)
	copy(h, "EFI PART")
	le := binary.LittleEndian
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], 1)
	le.PutUint64(h[40:], 34)
	le.PutUint64(h[48:], 16000)
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], 0xFFFFFFFF)
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	f, _ := os.Create(img)
	f.WriteAt(h, 512)
	f.Truncate(8 << 20)
	f.Close()
	start := time.Now()
	_, err := run(t, "inspect", "disk", img)
	if err == nil || strings.Contains(err.Error(), "\n") || !errors.Is(err, image.ErrBadTable) {
		t.Fatalf("want a one-line bad-table error, got %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v", d)
	}
}
