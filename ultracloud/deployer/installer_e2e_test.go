package deployer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"github.com/photoncloud/testkit/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/image"
)

func installerNode(t *testing.T, bundle *bootstrap.Bundle) NodeSpec {
	plan, _ := os.ReadFile("../bootstrap/testdata/disko/esp-swap-root.json")
	return NodeSpec{Name: "bm-1", Role: "control-plane", MACs: []string{"52:54:00:00:01:01"}, Plan: plan,
		TargetDisk: "/dev/vda", Bundle: bundle.Path, SystemID: "sys-42"}
}

func systemBundle(t *testing.T) *bootstrap.Bundle {
	return writeBundle(t, "sys-42", map[string]string{
		"esp/EFI/BOOT/BOOTX64.EFI":      "pretend systemd-boot",
		"esp/loader/loader.conf":        "default ultracloud.conf\ntimeout 0\n",
		"esp/ultracloud/vmlinuz":        strings.Repeat("K", 3<<20),
		"root/etc/ultracloud/system-id": "sys-42\n",
		"root/etc/os-release":           "ID=ultracloud\n",
	})
}

func fileSum(t *testing.T, p string) [32]byte {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// The installer on a raw image file: the disk ends up matching the plan,
// the ESP and root hold the bundle's files and the markers, and every phase
// reached the server.
func TestInstallerOnRawImage(t *testing.T) {
	b := systemBundle(t)
	ts := startServer(t, t.TempDir(), []NodeSpec{installerNode(t, b)})
	img := sparse(t, 1<<30)
	in := &bootstrap.Installer{
		Client:        fastClient(ts.url),
		Identity:      bootstrap.Identity{MACs: []string{"52:54:00:00:01:01"}, Firmware: "uefi"},
		WorkDir:       t.TempDir(),
		Disks:         map[string]string{"main": img},
		KernelOptions: "console=ttyS0",
	}
	res, err := in.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := bootstrap.ParsePlan(installerNode(t, b).Plan)
	diff, err := plan.Verify(context.Background(), map[string]string{"main": img})
	if err != nil || len(diff) != 0 {
		t.Fatalf("verify: %v\n%s", err, diff)
	}
	d, err := image.OpenDisk(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mounts := bootstrap.Mounts(res.Applied)
	esp, root := mounts["/boot"].Index, mounts["/"].Index
	read := func(part int, name string) string {
		data, err := d.ReadFile(part, name)
		if err != nil {
			t.Fatalf("partition %d %s: %v", part, name, err)
		}
		return string(data)
	}
	if read(esp, "EFI/BOOT/BOOTX64.EFI") != "pretend systemd-boot" || len(read(esp, "ultracloud/vmlinuz")) != 3<<20 {
		t.Fatal("ESP contents")
	}
	entry := read(esp, bootstrap.LoaderEntryFile)
	if !strings.Contains(entry, "ultracloud.root=PARTLABEL=disk-main-root") || !strings.Contains(entry, "ultracloud.node=bm-1") || !strings.Contains(entry, "console=ttyS0") {
		t.Fatalf("loader entry:\n%s", entry)
	}
	if read(root, bootstrap.SystemIDFile) != "sys-42\n" {
		t.Fatal("system id")
	}
	var inst bootstrap.Installed
	if err := json.Unmarshal([]byte(read(root, bootstrap.InstalledMarker)), &inst); err != nil || inst.Node != "bm-1" || inst.SystemID != "sys-42" || inst.Bundle != b.SHA256 {
		t.Fatalf("install marker %+v %v", inst, err)
	}
	if strings.TrimSpace(read(root, bootstrap.TokenFile)) != in.Client.Token() {
		t.Fatal("token file")
	}
	var phases []string
	for _, ev := range ts.Nodes()[0].Phases {
		phases = append(phases, string(ev.Phase))
	}
	if got := strings.Join(phases, ","); got != "plan-fetched,bundle-fetched,disk-applied,installed" {
		t.Fatalf("phases %s", got)
	}

	// First boot: the agent on the installed root reports first-boot and
	// active. Copy the root's files out (the guest mounts it instead).
	rootDir := t.TempDir()
	for _, name := range []string{bootstrap.SystemIDFile, bootstrap.InstalledMarker, bootstrap.TokenFile, bootstrap.ServerFile} {
		p := filepath.Join(rootDir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(read(root, name)), 0o644)
	}
	agent := &bootstrap.Agent{RootDir: rootDir}
	if err := agent.FirstBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootDir, bootstrap.FirstBootMarker)); err != nil {
		t.Fatal("no first-boot marker")
	}
	if st := ts.Nodes()[0]; st.Phase != bootstrap.PhaseActive {
		t.Fatalf("after first boot: %s", st.Phase)
	}
}

// One flipped byte in the bundle: the installer reports failed and the disk
// image is not touched.
func TestInstallerCorruptBundleLeavesDiskUntouched(t *testing.T) {
	slow(t)
	b := systemBundle(t)
	ts := startServer(t, t.TempDir(), []NodeSpec{installerNode(t, b)})
	data, _ := os.ReadFile(b.Path)
	data[len(data)/2] ^= 0x01
	os.WriteFile(b.Path, data, 0o644) // after the server hashed it
	img := sparse(t, 400<<20)         // the smallest disk the plan fits: hashing it whole stays cheap
	f, _ := os.OpenFile(img, os.O_WRONLY, 0)
	f.WriteAt([]byte("existing data that must survive"), 4096)
	f.Close()
	before := fileSum(t, img)
	in := &bootstrap.Installer{Client: fastClient(ts.url), Identity: bootstrap.Identity{MACs: []string{"52:54:00:00:01:01"}},
		WorkDir: t.TempDir(), Disks: map[string]string{"main": img}}
	_, err := in.Run(context.Background())
	if !errors.Is(err, bootstrap.ErrBundle) {
		t.Fatalf("want ErrBundle, got %v", err)
	}
	if fileSum(t, img) != before {
		t.Fatal("the disk image changed although the bundle did not verify")
	}
	st := ts.Nodes()[0]
	if st.Phase != bootstrap.PhaseFailed || !strings.Contains(st.Phases[len(st.Phases)-1].Reason, "sha256") {
		t.Fatalf("server saw %+v", st)
	}
}

func TestAgentReportsMismatch(t *testing.T) {
	b := systemBundle(t)
	ts := startServer(t, t.TempDir(), []NodeSpec{installerNode(t, b)})
	c := fastClient(ts.url)
	if _, err := c.PhoneHome(context.Background(), bootstrap.Identity{MACs: []string{"52:54:00:00:01:01"}}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	marker, _ := json.Marshal(bootstrap.Installed{Node: "bm-1", SystemID: "sys-42"})
	for name, data := range map[string]string{bootstrap.SystemIDFile: "sys-OLD\n", bootstrap.InstalledMarker: string(marker)} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	err := (&bootstrap.Agent{RootDir: root, Client: c}).FirstBoot(context.Background())
	if err == nil || !strings.Contains(err.Error(), `desired system "sys-42", installed "sys-OLD"`) {
		t.Fatalf("%v", err)
	}
	if st := ts.Nodes()[0]; st.Phase != bootstrap.PhaseFailed {
		t.Fatalf("phase %s", st.Phase)
	}
}

func sparse(t testing.TB, size int64) string { return testenv.Sparse(t, size) }

// slow skips tests of big images under -short.
func slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: large images; run without -short")
	}
}
