package bootstrap

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/photoncloud/testkit/ultracloud/image"
)

func installerNode(t *testing.T, bundle *Bundle) NodeSpec {
	plan, _ := os.ReadFile("testdata/disko/esp-swap-root.json")
	return NodeSpec{Name: "bm-1", Role: "control-plane", MACs: []string{"52:54:00:00:01:01"}, Plan: plan,
		TargetDisk: "/dev/vda", Bundle: bundle.Path, SystemID: "sys-42"}
}

func systemBundle(t *testing.T) *Bundle {
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
	in := &Installer{
		Client:        fastClient(ts.url),
		Identity:      Identity{MACs: []string{"52:54:00:00:01:01"}, Firmware: "uefi"},
		WorkDir:       t.TempDir(),
		Disks:         map[string]string{"main": img},
		KernelOptions: "console=ttyS0",
	}
	res, err := in.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := ParsePlan(installerNode(t, b).Plan)
	diff, err := plan.Verify(context.Background(), map[string]string{"main": img})
	if err != nil || len(diff) != 0 {
		t.Fatalf("verify: %v\n%s", err, diff)
	}
	d, err := image.OpenDisk(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mounts := Mounts(res.Applied)
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
	entry := read(esp, LoaderEntryFile)
	if !strings.Contains(entry, "ultracloud.root=PARTLABEL=disk-main-root") || !strings.Contains(entry, "ultracloud.node=bm-1") || !strings.Contains(entry, "console=ttyS0") {
		t.Fatalf("loader entry:\n%s", entry)
	}
	if read(root, SystemIDFile) != "sys-42\n" {
		t.Fatal("system id")
	}
	var inst Installed
	if err := json.Unmarshal([]byte(read(root, InstalledMarker)), &inst); err != nil || inst.Node != "bm-1" || inst.SystemID != "sys-42" || inst.Bundle != b.SHA256 {
		t.Fatalf("install marker %+v %v", inst, err)
	}
	if strings.TrimSpace(read(root, TokenFile)) != in.Client.Token() {
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
	for _, name := range []string{SystemIDFile, InstalledMarker, TokenFile, ServerFile} {
		p := filepath.Join(rootDir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(read(root, name)), 0o644)
	}
	agent := &Agent{RootDir: rootDir}
	if err := agent.FirstBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootDir, FirstBootMarker)); err != nil {
		t.Fatal("no first-boot marker")
	}
	if st := ts.Nodes()[0]; st.Phase != PhaseActive {
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
	in := &Installer{Client: fastClient(ts.url), Identity: Identity{MACs: []string{"52:54:00:00:01:01"}},
		WorkDir: t.TempDir(), Disks: map[string]string{"main": img}}
	_, err := in.Run(context.Background())
	if !errors.Is(err, ErrBundle) {
		t.Fatalf("want ErrBundle, got %v", err)
	}
	if fileSum(t, img) != before {
		t.Fatal("the disk image changed although the bundle did not verify")
	}
	st := ts.Nodes()[0]
	if st.Phase != PhaseFailed || !strings.Contains(st.Phases[len(st.Phases)-1].Reason, "sha256") {
		t.Fatalf("server saw %+v", st)
	}
}

func TestAgentReportsMismatch(t *testing.T) {
	b := systemBundle(t)
	ts := startServer(t, t.TempDir(), []NodeSpec{installerNode(t, b)})
	c := fastClient(ts.url)
	if _, err := c.PhoneHome(context.Background(), Identity{MACs: []string{"52:54:00:00:01:01"}}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	marker, _ := json.Marshal(Installed{Node: "bm-1", SystemID: "sys-42"})
	for name, data := range map[string]string{SystemIDFile: "sys-OLD\n", InstalledMarker: string(marker)} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	err := (&Agent{RootDir: root, Client: c}).FirstBoot(context.Background())
	if err == nil || !strings.Contains(err.Error(), `desired system "sys-42", installed "sys-OLD"`) {
		t.Fatalf("%v", err)
	}
	if st := ts.Nodes()[0]; st.Phase != PhaseFailed {
		t.Fatalf("phase %s", st.Phase)
	}
}

// craftBundle writes a bundle with arbitrary tar entries after a manifest
// that lists the given files: it is how a hostile bundle looks.
func craftBundle(t testing.TB, m Manifest, entries []*tar.Header, bodies map[string]string) string {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	md, _ := json.Marshal(m)
	tw.WriteHeader(&tar.Header{Name: manifestName, Size: int64(len(md)), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write(md)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(bodies[h.Name]))
		}
		tw.WriteHeader(h)
		io.WriteString(tw, bodies[h.Name])
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "hostile.tar.zst")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func entryOf(target, name, body string) BundleFile {
	return BundleFile{Target: target, Path: name, Mode: 0o644, Size: int64(len(body)), SHA256: sha256Hex([]byte(body))}
}

func TestExtractRefusesHostileBundles(t *testing.T) {
	ok := entryOf("root", "etc/ok", "fine")
	okHdr := &tar.Header{Name: "root/etc/ok", Typeflag: tar.TypeReg, Mode: 0o644}
	cases := []struct {
		name    string
		files   []BundleFile
		entries []*tar.Header
		bodies  map[string]string
		want    string
	}{
		{"dotdot", []BundleFile{ok, entryOf("root", "../x", "x")}, []*tar.Header{okHdr, {Name: "root/../x", Typeflag: tar.TypeReg}}, map[string]string{"root/etc/ok": "fine", "root/../x": "x"}, ".."},
		{"absolute", []BundleFile{ok, entryOf("root", "/etc/x", "x")}, nil, nil, "must be relative"},
		{"symlink to /", []BundleFile{ok}, []*tar.Header{{Name: "root/link", Typeflag: tar.TypeSymlink, Linkname: "/"}}, nil, "symlink"},
		{"symlink then file through it", []BundleFile{ok, entryOf("root", "link/passwd", "pw")}, []*tar.Header{{Name: "root/link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, {Name: "root/link/passwd", Typeflag: tar.TypeReg}}, map[string]string{"root/link/passwd": "pw"}, "symlink"},
		{"hard link", []BundleFile{ok}, []*tar.Header{okHdr, {Name: "root/hard", Typeflag: tar.TypeLink, Linkname: "root/etc/ok"}}, map[string]string{"root/etc/ok": "fine"}, "hard link"},
		{"char device", []BundleFile{ok}, []*tar.Header{{Name: "root/dev/mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}}, nil, "device node"},
		{"not in manifest", []BundleFile{ok}, []*tar.Header{okHdr, {Name: "root/extra", Typeflag: tar.TypeReg}}, map[string]string{"root/etc/ok": "fine", "root/extra": "x"}, "not in the manifest"},
		{"wrong content", []BundleFile{ok}, []*tar.Header{okHdr}, map[string]string{"root/etc/ok": "FINE"}, "sha256"},
		{"missing file", []BundleFile{ok, entryOf("esp", "a", "a")}, []*tar.Header{okHdr}, map[string]string{"root/etc/ok": "fine"}, "lacks"},
		{"bad target", []BundleFile{entryOf("home", "x", "x")}, nil, nil, `target "home"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := craftBundle(t, Manifest{SystemID: "x", Files: c.files}, c.entries, c.bodies)
			outside := t.TempDir()
			dirs := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
			err := (&Bundle{Path: p}).Extract(context.Background(), dirs)
			if !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
			for _, d := range []string{dirs[TargetRoot], dirs[TargetESP], outside} {
				ents, _ := os.ReadDir(d)
				if len(ents) != 0 {
					t.Fatalf("something was written to %s: %v", d, ents)
				}
			}
		})
	}
	// The good bundle extracts.
	good := systemBundle(t)
	dirs := DirSink{TargetRoot: t.TempDir(), TargetESP: t.TempDir()}
	if err := good.Extract(context.Background(), dirs); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dirs[TargetRoot], "etc/ultracloud/system-id")); string(data) != "sys-42\n" {
		t.Fatal("good bundle")
	}
}

func TestPackBundleReproducible(t *testing.T) {
	files := map[string]string{"root/a": "a", "esp/b": "b"}
	a := writeBundle(t, "s", files)
	b := writeBundle(t, "s", files)
	if a.SHA256 != b.SHA256 {
		t.Fatal("same tree, different bundles")
	}
	if _, err := OpenBundle(a.Path, b.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBundle(a.Path, strings.Repeat("0", 64)); !errors.Is(err, ErrBundle) {
		t.Fatal("digest mismatch accepted")
	}
}

// Whatever the bytes, Extract writes nothing outside its directories and
// never panics.
func FuzzExtractBundle(f *testing.F) {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "root"), 0o755)
	os.WriteFile(filepath.Join(dir, "root/x"), []byte("x"), 0o644)
	b, _ := PackBundle(context.Background(), dir, "s", f.TempDir())
	seed, _ := os.ReadFile(b.Path)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		p := filepath.Join(base, "b.tar.zst")
		os.WriteFile(p, data, 0o644)
		sink := DirSink{TargetRoot: filepath.Join(base, "root"), TargetESP: filepath.Join(base, "esp")}
		os.Mkdir(sink[TargetRoot], 0o755)
		os.Mkdir(sink[TargetESP], 0o755)
		(&Bundle{Path: p}).Extract(context.Background(), sink)
		filepath.WalkDir(base, func(q string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Fatalf("symlink created: %s", q)
			}
			return nil
		})
		ents, _ := os.ReadDir(base)
		if len(ents) != 3 {
			t.Fatalf("entries outside the sinks: %v", ents)
		}
	})
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
