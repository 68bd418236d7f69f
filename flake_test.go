package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// flake.nix's vendorHash must match go.mod/go.sum: it is the NAR hash of
// `go mod vendor`'s output, computed here with the real nix.
func TestFlakeVendorHash(t *testing.T) {
	if testing.Short() {
		t.Skip("vendors every module")
	}
	nix, err := exec.LookPath("nix")
	if err != nil {
		t.Skip("nix not installed (make deps installs nix-bin)")
	}
	flake, err := os.ReadFile("flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`vendorHash = "(sha256-[^"]+)"`).FindSubmatch(flake)
	if m == nil {
		t.Fatal("flake.nix has no vendorHash")
	}
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	// go mod vendor needs the packages that import the modules.
	cmd := exec.Command("go", "mod", "vendor", "-o", filepath.Join(dir, "vendor"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	out, err := exec.Command(nix, "--extra-experimental-features", "nix-command", "hash", "path", "--type", "sha256", "--sri", filepath.Join(dir, "vendor")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(regexp.MustCompile(`\s+`).ReplaceAll(out, nil)); got != string(m[1]) {
		t.Fatalf("flake.nix vendorHash is %s but go.mod vendors to %s; update flake.nix", m[1], got)
	}
}

// The flake parses (it cannot be evaluated offline: no nixpkgs here).
func TestFlakeParses(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Skip("nix-instantiate not installed")
	}
	if out, err := exec.Command("nix-instantiate", "--parse", "flake.nix").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
