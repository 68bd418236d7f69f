package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/image"
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
	iso := filepath.Join(t.TempDir(), "x.iso")
	if err := image.BuildISO(context.Background(), iso, image.ISOOptions{VolumeID: "CLI",
		Files:    map[string]image.Source{"/hello.txt": {Data: []byte("hi\n")}},
		EFIFiles: map[string]image.Source{"/EFI/BOOT/BOOTX64.EFI": {Data: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "inspect", "iso", iso)
	if err != nil || !strings.Contains(out, `volume "CLI"`) || !strings.Contains(out, "platform efi") || !strings.Contains(out, "/hello.txt") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = run(t, "inspect", "iso", iso, "--cat", "/hello.txt")
	if err != nil || out != "hi\n" {
		t.Fatalf("cat: %q %v", out, err)
	}
}

func TestDiskoLayoutNeedsSize(t *testing.T) {
	if _, err := run(t, "disko", "layout", "../../ultracloud/bootstrap/testdata/disko/esp-root.json"); err == nil || !strings.Contains(err.Error(), "--disk-size") {
		t.Fatalf("%v", err)
	}
}
