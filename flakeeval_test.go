package testkit

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// flake.nix evaluated offline with real nix against the stub nixpkgs of
// testdata/nixpkgs-stub: every check instantiates (drvPath), the checks
// and apps are the registry's lanes, each check runs its lane's driver
// with flags the driver accepts, and gets the guest binary from the
// flake's own package and nix for the guards.
func TestFlakeChecksEvaluate(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Skip("nix-instantiate not installed (make deps installs nix-bin)")
	}
	const expr = `let
  f = import ./flake.nix;
  o = f.outputs { self = { }; nixpkgs = import ./testdata/nixpkgs-stub; };
in {
  apps = builtins.attrNames o.apps.x86_64-linux;
  checks = builtins.mapAttrs (n: c: {
    drv = c.drvPath;
    script = builtins.elemAt c.args 1;
    guest = c.ULTRACLOUD_GUEST_BINARY;
    inputs = map (i: i.name) c.nativeBuildInputs;
  }) o.checks.x86_64-linux;
}`
	cmd := exec.Command("nix-instantiate", "--eval", "--json", "--strict", "-E", expr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evaluate flake.nix against the stub nixpkgs: %v\n%s", err, stderr.String())
	}
	var got struct {
		Apps   []string `json:"apps"`
		Checks map[string]struct {
			Drv, Script, Guest string
			Inputs             []string
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	reg, err := lanes.Registry()
	if err != nil {
		t.Fatal(err)
	}
	seed := map[string]string{}
	for _, d := range lanes.Seed() {
		seed[d.Name] = d.Lane
	}
	var ran []string
	for name, c := range got.Checks {
		lane := seed[name]
		if lane == "" {
			t.Errorf("check %q is no documented, runnable lane", name)
			continue
		}
		ran = append(ran, lane)
		if !strings.HasSuffix(c.Drv, ".drv") || !strings.HasSuffix(c.Guest, "/bin/ultracloud-guest") || !slices.Contains(c.Inputs, "nix") {
			t.Errorf("check %s: drv %q, guest %q, inputs %v", name, c.Drv, c.Guest, c.Inputs)
		}
		// The driver line of the check's script, run with those flags.
		var args []string
		for _, line := range strings.Split(c.Script, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == lane {
				args = f[1:]
			}
		}
		if args == nil {
			t.Errorf("check %s never runs %s:\n%s", name, lane, c.Script)
			continue
		}
		for i, a := range args {
			if a == "$TMPDIR/work" {
				args[i] = t.TempDir()
			}
		}
		if code := lanes.Main(context.Background(), lane, append(args, "-h"), nil, io.Discard, io.Discard); code != lanes.ExitPass {
			t.Errorf("check %s: %s rejects %q (exit %d)", name, lane, args, code)
		}
	}
	slices.Sort(ran)
	if !slices.Equal(ran, reg.Names()) {
		t.Errorf("checks run %v, registry %v", ran, reg.Names())
	}
	for _, l := range reg.Names() {
		if !slices.Contains(got.Apps, l) {
			t.Errorf("no app %q (apps %v)", l, got.Apps)
		}
	}
}
