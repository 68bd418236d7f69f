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

func TestDeployerVMSmoke(t *testing.T) {
	cfg := runConfig(t)
	r, err := DeployerVMSmoke(context.Background(), cfg, DeployerSmokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Steps {
		t.Logf("%-20s %s %5.1fs %s", s.Name, s.Status, s.Duration().Seconds(), firstLine(s.Reason))
	}
	if !r.Passed() {
		t.Fatalf("deployer-vm-smoke failed: %s", r.Reason)
	}
}

// The aggregate with members skipped is not a pass: it says incomplete,
// its driver exits 3, and the summary line counts the skipped members.
func TestPortableControlPlaneRegressions(t *testing.T) {
	runConfig(t) // skips under -short and on hosts that cannot run VMs
	flake := guardFlake(t)
	work := t.TempDir()
	t.Setenv("out", t.TempDir())
	var out, errb bytes.Buffer
	code := Main(context.Background(), "portable-control-plane-regressions", []string{"-e2e", "-flake", flake, "-work-dir", work}, nil, &out, &errb)
	t.Logf("%s", out.String())
	if code != ExitIncomplete {
		t.Fatalf("exit %d, want %d (incomplete)\n%s", code, ExitIncomplete, errb.String())
	}
	if !strings.Contains(out.String(), "portable-control-plane-regressions: incomplete") || !strings.Contains(out.String(), "0 failed, 3 skipped") {
		t.Fatalf("summary line does not say incomplete with 3 skipped:\n%s", out.String())
	}
	var r ultracloud.Report
	data, err := os.ReadFile(filepath.Join(work, "report", "report.json"))
	if err != nil || json.Unmarshal(data, &r) != nil {
		t.Fatalf("report.json: %v", err)
	}
	status := map[string]ultracloud.Status{}
	for _, s := range r.Steps {
		if !strings.Contains(s.Name, "/") {
			status[s.Name] = s.Status
		}
	}
	want := map[string]ultracloud.Status{
		"canonical-profile-eval-guards": ultracloud.StatusPass, "deployer-vm-smoke": ultracloud.StatusPass,
		"deployer-bootstrap-e2e": ultracloud.StatusSkip, "host-lifecycle-e2e": ultracloud.StatusSkip, "fleet-scheduler-e2e": ultracloud.StatusSkip,
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %s, want %s", k, status[k], v)
		}
	}
	if r.Status != ultracloud.StatusIncomplete || !strings.Contains(r.Reason, "fleet-scheduler-e2e") {
		t.Fatalf("aggregate: %s %q", r.Status, r.Reason)
	}
	if j := r.JUnit(); j.Skipped != 3 || j.Failures != 0 {
		t.Fatalf("JUnit skipped %d failures %d, want the 3 unimplemented members skipped", j.Skipped, j.Failures)
	}
}
