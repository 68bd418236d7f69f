package testkit

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// The registry, the examples/ drivers and the flake's checks and apps name
// the same lanes (the CLI's `cluster <lane>` verbs are checked in
// cmd/ultracloud). The flake is evaluated for real with nix-instantiate
// against an empty nixpkgs: attribute names need no packages.
func TestLanesEverywhere(t *testing.T) {
	reg, err := lanes.Registry()
	if err != nil {
		t.Fatal(err)
	}
	registered := reg.Names()

	ents, err := os.ReadDir("examples")
	if err != nil {
		t.Fatal(err)
	}
	var examples []string
	for _, e := range ents {
		if e.IsDir() {
			examples = append(examples, e.Name())
		}
	}
	slices.Sort(examples)
	if !slices.Equal(examples, registered) {
		t.Errorf("examples/ %v, registry %v", examples, registered)
	}

	// Every driver takes the flags the flake check passes (and the common ones).
	flake, _ := os.ReadFile("flake.nix")
	m := regexp.MustCompile(`\$\{lane\} (.*)`).FindSubmatch(flake)
	if m == nil {
		t.Fatal("flake.nix: no laneCheck command line")
	}
	for _, l := range registered {
		args := append(regexp.MustCompile(`\s+`).Split(string(m[1]), -1), "-v", "-json", "-keep-vms", "-h")
		for i, a := range args {
			if a == "$TMPDIR/work" {
				args[i] = t.TempDir()
			}
		}
		if code := lanes.Main(context.Background(), l, args, nil, io.Discard, io.Discard); code != lanes.ExitPass {
			t.Errorf("%s rejects the flake check's flags %q (exit %d)", l, args, code)
		}
	}

	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Skip("nix-instantiate not installed (make deps installs nix-bin)")
	}
	attrs := func(which string) []string {
		expr := `let f = import ./flake.nix; o = f.outputs { self = {}; nixpkgs = { legacyPackages.x86_64-linux = {}; }; }; in builtins.attrNames o.` + which + `.x86_64-linux`
		out, err := exec.Command("nix-instantiate", "--eval", "--json", "--strict", "-E", expr).Output()
		if err != nil {
			t.Fatalf("evaluate flake.nix %s: %v", which, err)
		}
		var names []string
		if err := json.Unmarshal(out, &names); err != nil {
			t.Fatal(err)
		}
		return names
	}
	var fromChecks []string
	seed := map[string]string{}
	for _, d := range lanes.Seed() {
		seed[d.Name] = d.Lane
	}
	for _, c := range attrs("checks") {
		l, ok := seed[c]
		if !ok || l == "" {
			t.Errorf("flake check %q is no documented, runnable lane", c)
			continue
		}
		fromChecks = append(fromChecks, l)
	}
	slices.Sort(fromChecks)
	if !slices.Equal(fromChecks, registered) {
		t.Errorf("flake checks run %v, registry %v", fromChecks, registered)
	}
	apps := attrs("apps")
	for _, l := range registered {
		if !slices.Contains(apps, l) {
			t.Errorf("flake has no app %q (apps: %v)", l, apps)
		}
	}
}
