package lanes

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

func TestCanonicalTargets(t *testing.T) {
	var names []string
	for _, g := range CanonicalTargets() {
		names = append(names, g.Name)
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"single-node-quickstart", "netboot-all-in-one", "node01", "node03", "netboot-control-plane",
		"ultracloud-iso", "baremetal-qemu-control-plane", "baremetal-qemu-worker", "netboot-worker", "baremetal-iso-e2e", "single-node-quickstart (app)"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("%s missing from %s", want, got)
		}
	}
}

// guardFlake copies the test flake, applying edits (old → new).
func guardFlake(t *testing.T, edits ...string) string {
	t.Helper()
	if _, err := exec.LookPath("nix"); err != nil {
		t.Skip("nix not installed (make deps installs nix-bin)")
	}
	data, err := os.ReadFile("testdata/guard-flake/flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("edit %q does not apply", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return "path:" + dir
}

func TestGuardsAgainstRealNix(t *testing.T) {
	ctx := context.Background()
	cfg := ultracloud.RunConfig{WorkDir: t.TempDir()}
	flake := guardFlake(t)
	for name, run := range map[string]func() (*ultracloud.Report, error){
		"eval": func() (*ultracloud.Report, error) {
			return CanonicalProfileEvalGuards(ctx, cfg, GuardOptions{Flake: flake})
		},
		"build": func() (*ultracloud.Report, error) {
			return CanonicalProfileBuildGuards(ctx, cfg, GuardOptions{Flake: flake})
		},
	} {
		r, err := run()
		if err != nil {
			t.Fatal(err)
		}
		if !r.Passed() {
			t.Fatalf("%s guards on a good flake: %s", name, r.Reason)
		}
		var steps []string
		for _, st := range r.Steps {
			steps = append(steps, st.Name)
		}
		got := " " + strings.Join(steps, " | ") + " |"
		// Every kind of system output is realised (or evaluated) where the
		// flake defines it, and only there.
		for _, want := range []string{" system outputs |", "#nixosConfigurations.node01.config.system.build.toplevel",
			"#nixosConfigurations.node01.config.system.build.vm", "#nixosConfigurations.ultracloud-iso.config.system.build.isoImage",
			"#nixosConfigurations.netboot-worker.config.system.build.kernel", "#nixosConfigurations.netboot-worker.config.system.build.netbootRamdisk",
			"#checks.x86_64-linux.baremetal-iso-e2e"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: no step%s in%s", name, want, got)
			}
		}
		if strings.Contains(got, "node01.config.system.build.isoImage") || strings.Contains(got, "ultracloud-iso.config.system.build.kernel") {
			t.Errorf("%s: a step for an output the flake does not define:%s", name, got)
		}
	}
}

func TestEvalGuardFailFirst(t *testing.T) {
	flake := guardFlake(t, `build = name: { toplevel = mk name;`,
		`build = name: { toplevel = if name == "node02" then throw "node02 is broken on purpose" else mk name;`)
	r, err := CanonicalProfileEvalGuards(context.Background(), ultracloud.RunConfig{}, GuardOptions{Flake: flake, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || !strings.Contains(r.Reason, "node02 is broken on purpose") || !strings.Contains(r.Reason, "nixosConfigurations.node02") {
		t.Fatalf("reason: %s", r.Reason)
	}
	var skipped, failed int
	for _, s := range r.Steps {
		switch s.Status {
		case ultracloud.StatusSkip:
			skipped++
		case ultracloud.StatusFail:
			failed++
		}
	}
	if failed != 1 || skipped == 0 {
		t.Fatalf("fail-first: %d failed, %d skipped", failed, skipped)
	}
}

func TestBuildGuardNamesFailingDerivation(t *testing.T) {
	flake := guardFlake(t, `checks.x86_64-linux.baremetal-iso-e2e = mk "baremetal-iso-e2e";`,
		`checks.x86_64-linux.baremetal-iso-e2e = derivation { name = "e2e-broken"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo build step exploded >&2; exit 3" ]; };`)
	r, err := CanonicalProfileBuildGuards(context.Background(), ultracloud.RunConfig{}, GuardOptions{Flake: flake})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || !strings.Contains(r.Reason, "checks.x86_64-linux.baremetal-iso-e2e") || !strings.Contains(r.Reason, "e2e-broken") {
		t.Fatalf("reason: %s", r.Reason)
	}
}

// A broken VM runner or ISO fails the build guard naming that output.
func TestBuildGuardRealisesSystemOutputs(t *testing.T) {
	broken := `derivation { name = "vm-broken"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo the VM runner exploded >&2; exit 3" ]; }`
	flake := guardFlake(t, `vm = mk "run-${name}-vm";`, `vm = if name == "node03" then `+broken+` else mk "run-${name}-vm";`)
	r, err := CanonicalProfileBuildGuards(context.Background(), ultracloud.RunConfig{}, GuardOptions{Flake: flake})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || !strings.Contains(r.Reason, "nixosConfigurations.node03.config.system.build.vm") || !strings.Contains(r.Reason, "vm-broken") {
		t.Fatalf("reason: %s", r.Reason)
	}
	// The eval guard instantiates it and passes: evaluating is not building.
	if r, err := CanonicalProfileEvalGuards(context.Background(), ultracloud.RunConfig{}, GuardOptions{Flake: flake}); err != nil || !r.Passed() {
		t.Fatalf("eval guards: %v %v", err, r.Reason)
	}
}
