package lanes

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

func TestSingleNodeQuickstart(t *testing.T) {
	cfg := runConfig(t)
	r, err := SingleNodeQuickstart(context.Background(), cfg, QuickstartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.Steps {
		names = append(names, s.Name)
		t.Logf("%-10s %s %5.1fs", s.Name, s.Status, s.Duration().Seconds())
	}
	if !r.Passed() {
		t.Fatalf("quickstart failed: %s", r.Reason)
	}
	if got := strings.Join(names, " "); got != "boot chainfire flaredb iam plasmavmc prismnet" {
		t.Fatalf("steps %q", got)
	}
}

// A component that fails makes the lane fail naming it, at once rather than
// at its timeout.
func TestSingleNodeQuickstartFailingComponent(t *testing.T) {
	cfg := runConfig(t)
	r, err := SingleNodeQuickstart(context.Background(), cfg, QuickstartOptions{FailComponents: []string{"iam"}, ComponentTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || !strings.Contains(r.Reason, "component iam is not ready") || !strings.Contains(r.Reason, "iam.service is failed") {
		t.Fatalf("reason: %s", r.Reason)
	}
	var iam ultracloud.Step
	for _, s := range r.Steps {
		if s.Name == "iam" {
			iam = s
		}
	}
	if iam.Status != ultracloud.StatusFail || iam.Duration() > time.Minute {
		t.Fatalf("iam step %+v took %v (timeout 15 min under TCG)", iam.Status, iam.Duration())
	}
}

// deployer-vm-smoke activates a closure of real store paths built here by
// nix, on the agent's own reports; a closure with a path left out or a
// corrupted NAR fails, naming the path.
func TestDeployerVMSmoke(t *testing.T) {
	cfg := runConfig(t)
	r, err := DeployerVMSmoke(context.Background(), cfg, DeployerSmokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Steps {
		t.Logf("%-36s %s %5.1fs %s", s.Name, s.Status, s.Duration().Seconds(), firstLine(s.Reason))
	}
	if !r.Passed() {
		t.Fatalf("deployer-vm-smoke failed: %s", r.Reason)
	}
	var closure string
	for _, e := range r.Events {
		if e.Name == "closure" {
			closure = e.Detail
		}
	}
	if !strings.Contains(closure, "3 store paths") {
		t.Fatalf("closure event %q, want 3 store paths", closure)
	}
	cases := []struct {
		name   string
		tamper func(cache string, paths []string) error
		want   []string
	}{
		{"path left out", func(cache string, paths []string) error {
			return os.Remove(filepath.Join(cache, narinfoName(pathNamed(paths, "-ultracloud-smoke-dep"))))
		}, []string{"-ultracloud-smoke-dep (referenced by", "would need a build"}},
		{"corrupt NAR", func(cache string, paths []string) error {
			nar := narFile(t, cache, pathNamed(paths, "-ultracloud-smoke-lib"))
			data, err := os.ReadFile(nar)
			if err != nil {
				return err
			}
			i := strings.Index(string(data), "hello")
			data[i] ^= 0x20
			return os.WriteFile(nar, data, 0o644)
		}, []string{"NarHash mismatch", "-ultracloud-smoke-lib"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := runConfig(t)
			r, err := DeployerVMSmoke(context.Background(), cfg, DeployerSmokeOptions{tamper: c.tamper})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if r.Passed() || !strings.Contains(r.Reason, w) {
					t.Fatalf("status %s, reason %q; want a failure naming %q", r.Status, r.Reason, w)
				}
			}
			t.Logf("fails as it should: %s", firstLine(r.Reason))
		})
	}
}

// The aggregate runs its five members for real and passes only with all
// five passed (TestAggregateStatus covers skipped and failed members): the
// driver exits 0, the summary line and JUnit count no skip, and each
// member's own proof is in the report (the fleet failover, the lifecycle
// with a re-enrolment, the installed system active).
func TestPortableControlPlaneRegressions(t *testing.T) {
	runConfig(t) // skips under -short and on hosts that cannot run VMs
	flake := guardFlake(t)
	work := t.TempDir()
	t.Setenv("out", t.TempDir())
	var out, errb bytes.Buffer
	code := Main(context.Background(), "portable-control-plane-regressions", []string{"-e2e", "-flake", flake, "-work-dir", work}, nil, &out, &errb)
	t.Logf("%s", out.String())
	var r ultracloud.Report
	data, err := os.ReadFile(filepath.Join(work, "report", "report.json"))
	if err != nil || json.Unmarshal(data, &r) != nil {
		t.Fatalf("report.json: %v", err)
	}
	for _, s := range r.Steps {
		t.Logf("%-50s %-5s %6.1fs %s", s.Node+" "+s.Name, s.Status, s.Duration().Seconds(), firstLine(s.Reason))
	}
	for _, s := range r.Steps {
		if s.Status == ultracloud.StatusFail && strings.Contains(s.Reason, "\n") {
			t.Logf("%s %s failed, in full:\n%s", s.Node, s.Name, s.Reason)
		}
	}
	if code != ExitPass {
		t.Fatalf("exit %d, want %d (pass): %s\n%s", code, ExitPass, r.Reason, errb.String())
	}
	if !strings.Contains(out.String(), "portable-control-plane-regressions: pass") || !strings.Contains(out.String(), "0 failed, 0 skipped") {
		t.Fatalf("summary line does not say pass with nothing skipped:\n%s", out.String())
	}
	status := map[string]ultracloud.Status{}
	steps := map[string]bool{}
	for _, s := range r.Steps {
		if !strings.Contains(s.Name, "/") {
			status[s.Name] = s.Status
		}
		steps[s.Name] = s.Status == ultracloud.StatusPass
	}
	for _, m := range []string{"canonical-profile-eval-guards", "deployer-bootstrap-e2e", "host-lifecycle-e2e", "deployer-vm-smoke", "fleet-scheduler-e2e"} {
		if status[m] != ultracloud.StatusPass {
			t.Errorf("%s: %s, want pass", m, status[m])
		}
	}
	for _, s := range []string{"deployer-bootstrap-e2e/boot-installed", "deployer-bootstrap-e2e/active", "deployer-bootstrap-e2e/verify-disk",
		"host-lifecycle-e2e/drain", "host-lifecycle-e2e/decommission", "host-lifecycle-e2e/refused-until-approved", "host-lifecycle-e2e/re-enrol"} {
		if !steps[s] {
			t.Errorf("no passed step %s", s)
		}
	}
	failover := ""
	for _, e := range r.Events {
		if strings.HasPrefix(e.Name, "fleet-scheduler-e2e/") && strings.Contains(e.Detail, "re-placed") {
			failover = e.Detail
		}
	}
	if failover == "" {
		t.Errorf("no failover event of fleet-scheduler-e2e in %+v", r.Events)
	}
	t.Logf("fleet-scheduler-e2e: %s", failover)
	if j := r.JUnit(); j.Skipped != 0 || j.Failures != 0 || r.Status != ultracloud.StatusPass {
		t.Fatalf("aggregate %s; JUnit skipped %d failures %d", r.Status, j.Skipped, j.Failures)
	}
}
