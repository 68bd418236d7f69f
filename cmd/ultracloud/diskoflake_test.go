package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// `ultracloud disko from-flake` against real nix, on a flake whose disko
// devices hold functions and a derivation as disko's do: plain
// `nix eval --json` fails on them, from-flake prints a plan ParsePlan reads
// with every partition, its _index, and the nodev entry.
func TestDiskoFromFlakeRealNix(t *testing.T) {
	if _, err := exec.LookPath("nix"); err != nil {
		t.Skip("nix not installed (make deps installs nix-bin)")
	}
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/disko-flake/flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	flake := "path:" + dir
	attr := flake + "#nixosConfigurations.node01.config.disko.devices"
	nixArgs := []string{"--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""}
	plain, err := exec.Command("nix", append(nixArgs, "eval", "--json", attr)...).CombinedOutput()
	if err == nil || !strings.Contains(string(plain), "cannot convert a function to JSON") {
		t.Fatalf("plain nix eval --json was expected to fail on functions: %v\n%s", err, plain)
	}

	out := filepath.Join(dir, "plan.json")
	if msg, err := run(t, "disko", "from-flake", flake+"#node01", "-o", out); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "_meta") || strings.Contains(string(data), "_create") || !strings.Contains(string(data), `"_index"`) {
		t.Fatalf("internals not dropped, or _index lost:\n%s", data)
	}
	plan, err := bootstrap.ParsePlan(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Disks) != 1 || len(plan.Disks[0].Partitions) != 2 || plan.Disks[0].Partitions[1].Content.Label() != "nixos" || len(plan.Nodev) != 1 {
		t.Fatalf("%+v", plan)
	}
	if err := plan.Validate(true); err != nil {
		t.Fatal(err)
	}
	// The same expression, as documented, with nix directly.
	expr, _ := run(t, "disko", "apply-expr")
	direct, err := exec.Command("nix", append(nixArgs, "eval", "--json", attr, "--apply", expr)...).Output()
	if err != nil || strings.TrimSpace(string(direct)) != strings.TrimSpace(string(data)) {
		t.Fatalf("apply-expr with nix eval: %v\n%s", err, direct)
	}
	if _, err := run(t, "disko", "from-flake", flake); err == nil || !strings.Contains(err.Error(), "FLAKE#HOST") {
		t.Fatalf("no host: %v", err)
	}
}
