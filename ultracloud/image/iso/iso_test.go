package iso

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/image"
)

func TestBuildISOReadBack(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "big.bin")
	payload := make([]byte, 3<<20+17)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	os.WriteFile(host, payload, 0o644)
	out := filepath.Join(dir, "out.iso")
	err := Build(context.Background(), out, Options{
		VolumeID: "UCTEST",
		Files: map[string]image.Source{
			"/README":            {Data: []byte("hello iso\n")},
			"/a/b/c/deep.txt":    {Data: []byte("deep")},
			"/payload/big.bin":   {Path: host},
			"/boot/isolinux.bin": {Data: make([]byte, 2048)},
		},
		EFIFiles: map[string]image.Source{
			"/EFI/BOOT/BOOTX64.EFI": {Data: []byte("MZ not really an EFI app")},
			"/loader/loader.conf":   {Data: []byte("timeout 0\n")},
		},
		BIOSBootFile: "/boot/isolinux.bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(host); err != nil {
		t.Fatal("BuildISO touched the caller's files")
	}
	iso, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close()
	if iso.VolumeID != "UCTEST" {
		t.Fatalf("volume id %q", iso.VolumeID)
	}
	got, err := iso.ReadFile("/payload/big.bin")
	if err != nil || string(got) != string(payload) {
		t.Fatalf("big.bin: %d bytes, %v", len(got), err)
	}
	if b, _ := iso.ReadFile("/a/b/c/deep.txt"); string(b) != "deep" {
		t.Fatalf("deep %q", b)
	}
	files, err := iso.Walk()
	if err != nil || !strings.Contains(strings.Join(files, " "), "/boot/efiboot.img") {
		t.Fatalf("walk %v %v", files, err)
	}
	var plats []string
	for _, e := range iso.BootEntries {
		plats = append(plats, e.Platform)
	}
	if strings.Join(plats, ",") != "bios,efi" {
		t.Fatalf("boot entries %+v", iso.BootEntries)
	}
	// The EFI entry points at a FAT image holding the EFI files.
	efi, _ := iso.ReadFile("/boot/efiboot.img")
	tmp := filepath.Join(dir, "efi.img")
	os.WriteFile(tmp, efi, 0o644)
	if fi, err := image.Sniff(mustOpen(t, tmp), 0); err != nil || fi.Type != image.FSVfat || fi.Label != "EFIBOOT" {
		t.Fatalf("EFI image: %+v %v", fi, err)
	}

	if _, err := exec.LookPath("xorriso"); err == nil {
		out, err := exec.Command("xorriso", "-indev", out, "-report_el_torito", "plain").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "UEFI") {
			t.Fatalf("xorriso does not list the EFI entry: %v\n%s", err, out)
		}
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestBuildISORefuses(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge")
	f, _ := os.Create(huge)
	f.Truncate(4 << 30) // sparse: costs nothing
	f.Close()
	cases := map[string]Options{
		"4 GiB file":   {Files: map[string]image.Source{"/huge": {Path: huge}}},
		"too deep":     {Files: map[string]image.Source{"/1/2/3/4/5/6/7/8/9": {Data: []byte("x")}}},
		"long volume":  {VolumeID: strings.Repeat("V", 33)},
		"bios missing": {BIOSBootFile: "/nope"},
		"missing file": {Files: map[string]image.Source{"/x": {Path: filepath.Join(dir, "absent")}}},
	}
	for name, o := range cases {
		out := filepath.Join(dir, "x.iso")
		if err := Build(context.Background(), out, o); !errors.Is(err, ErrISO) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// DeepDirectories lifts the depth limit.
	if err := Build(context.Background(), filepath.Join(dir, "deep.iso"), Options{DeepDirectories: true,
		Files: map[string]image.Source{"/1/2/3/4/5/6/7/8/9": {Data: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenISORejects(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.iso")
	os.WriteFile(p, make([]byte, 64<<10), 0o644)
	if _, err := Open(p); !errors.Is(err, ErrISO) {
		t.Fatalf("%v", err)
	}
}

func seedImages(f *testing.F) {
	dir := f.TempDir()
	iso := filepath.Join(dir, "s.iso")
	if err := Build(context.Background(), iso, Options{Files: map[string]image.Source{"/a": {Data: []byte("a")}},
		EFIFiles: map[string]image.Source{"/EFI/BOOT/BOOTX64.EFI": {Data: []byte("x")}}}); err == nil {
		data, _ := os.ReadFile(iso)
		f.Add(data[:min(len(data), 96<<10)])
	}
}

// Corrupted or truncated images never panic or hang OpenISO.
func FuzzOpenISO(f *testing.F) {
	seedImages(f)
	p := filepath.Join(f.TempDir(), "f.iso") // one file, rewritten per input: nothing left behind
	f.Fuzz(func(t *testing.T, data []byte) {
		os.WriteFile(p, data, 0o644)
		iso, err := Open(p)
		if err != nil {
			return
		}
		iso.Walk()
		iso.Close()
	})
}
