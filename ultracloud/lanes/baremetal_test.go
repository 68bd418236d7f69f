package lanes

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/image"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func runConfig(t *testing.T) ultracloud.RunConfig {
	t.Helper()
	if testing.Short() {
		t.Skip("boots VMs")
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if host.OVMFCode == "" || host.QEMU == "" {
		t.Skipf("host cannot run VM lanes: %v", host.Problems)
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return ultracloud.RunConfig{WorkDir: t.TempDir(), Host: host,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
}

// The canonical bare-metal proof, for real: UEFI, installer ISO,
// phone-home, bundle, Disko, reboot with the ISO ejected, first boot from
// disk, active; then both disks verified in-process. It runs twice in one
// work dir: the second run must redo the work (fresh enrolments, fresh
// disks), never pass on the first run's events.
func TestBaremetalISO(t *testing.T) {
	cfg := runConfig(t)
	var runs []*ultracloud.Report
	for i := range 2 {
		t0 := time.Now()
		r, err := BaremetalISO(context.Background(), cfg, BaremetalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Steps {
			t.Logf("run %d %-30s %-15s %-5s %6.1fs %s", i+1, s.Node, s.Name, s.Status, s.Duration().Seconds(), firstLine(s.Reason))
		}
		if !r.Passed() {
			t.Fatalf("run %d failed: %s", i+1, r.Reason)
		}
		t.Logf("run %d passed in %v (accelerator %s)", i+1, time.Since(t0).Round(time.Second), r.Host.Accelerator)
		checkBaremetalReport(t, cfg.WorkDir, r)
		runs = append(runs, r)
	}
	if runs[0].RunID == runs[1].RunID {
		t.Fatalf("both runs have run id %s", runs[0].RunID)
	}
	second := runs[1]
	for _, s := range second.Steps {
		if s.Finished.Before(s.Started) {
			t.Errorf("run 2: %s/%s finished %v before it started", s.Node, s.Name, s.Started.Sub(s.Finished))
		}
		if s.Started.Before(second.Started) {
			t.Errorf("run 2: %s/%s started %v before the run did (a stale event)", s.Node, s.Name, second.Started.Sub(s.Started))
		}
	}
	// The second run really installed: each disk's marker names its run.
	for _, node := range []string{"baremetal-qemu-control-plane", "baremetal-qemu-worker"} {
		m := installedMarker(t, filepath.Join(cfg.WorkDir, "nodes", node, "root.raw"))
		if m.Run != second.RunID || m.Node != node {
			t.Errorf("%s: disk installed by run %q, want the second run %q", node, m.Run, second.RunID)
		}
	}
}

// installedMarker finds the installer's marker on any partition of disk.
func installedMarker(t *testing.T, disk string) bootstrap.Installed {
	t.Helper()
	img, err := image.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for part := 1; part <= 4; part++ {
		data, err := img.ReadFile(part, bootstrap.InstalledMarker)
		if err != nil {
			continue
		}
		var m bootstrap.Installed
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s partition %d: %v", disk, part, err)
		}
		return m
	}
	t.Fatalf("%s: no %s on any partition", disk, bootstrap.InstalledMarker)
	return bootstrap.Installed{}
}

func checkBaremetalReport(t *testing.T, workDir string, r *ultracloud.Report) {
	t.Helper()
	for _, node := range []string{"baremetal-qemu-control-plane", "baremetal-qemu-worker"} {
		var names []string
		for _, s := range r.Steps {
			if s.Node == node {
				names = append(names, s.Name)
			}
		}
		want := "phone-home plan-fetched bundle-fetched disk-applied installed rebooting reboot first-boot active verify-disk"
		if strings.Join(names, " ") != want {
			t.Errorf("%s steps %q", node, names)
		}
	}
	data, err := os.ReadFile(filepath.Join(workDir, "report", "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var j ultracloud.JUnitSuites
	if err := xml.Unmarshal(data, &j); err != nil || j.Failures != 0 || j.Tests < 20 {
		t.Fatalf("junit: %+v %v", j, err)
	}
	var back ultracloud.Report
	data, _ = os.ReadFile(filepath.Join(workDir, "report", "report.json"))
	if err := json.Unmarshal(data, &back); err != nil || back.RunID != r.RunID {
		t.Fatalf("report.json is not this run's (%q, want %q): %v", back.RunID, r.RunID, err)
	}
	svg, _ := os.ReadFile(filepath.Join(workDir, "report", "timeline.svg"))
	if !strings.Contains(string(svg), "baremetal-qemu-worker") || !strings.Contains(string(svg), "<rect") {
		t.Fatal("timeline.svg")
	}
	if strings.Contains(string(svg), `x="-`) {
		t.Fatal("timeline.svg draws at negative x")
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// A bundle whose bytes no longer match its sha256: the lane fails at
// bundle-fetched with the guest's reason, within seconds of the download,
// and the disk was never touched.
func TestBaremetalISOWrongBundleSHA(t *testing.T) {
	cfg := runConfig(t)
	r, err := BaremetalISO(context.Background(), cfg, BaremetalOptions{
		afterServe: func(_ *deployer.PhoneHomeServer, b *bootstrap.Bundle) {
			data, _ := os.ReadFile(b.Path)
			data[len(data)/3] ^= 0x20
			os.WriteFile(b.Path, data, 0o644)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() {
		t.Fatal("lane passed with a corrupt bundle")
	}
	var failed ultracloud.Step
	var planAt time.Time
	for _, s := range r.Steps {
		if s.Status == ultracloud.StatusFail && failed.Name == "" {
			failed = s
		}
		if s.Name == "plan-fetched" && planAt.IsZero() {
			planAt = s.Finished
		}
	}
	if failed.Name != "bundle-fetched" || !strings.Contains(failed.Reason, "sha256") {
		t.Fatalf("failed step %q: %s", failed.Name, firstLine(failed.Reason))
	}
	// The download itself takes ~12 s under TCG; the phase timeout is 6 min.
	if took := failed.Finished.Sub(planAt); took > time.Minute {
		t.Fatalf("failure took %v after the plan was fetched", took)
	}
	for _, node := range []string{"baremetal-qemu-control-plane", "baremetal-qemu-worker"} {
		data, err := os.ReadFile(filepath.Join(cfg.WorkDir, "nodes", node, "root.raw"))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range data[:1<<20] {
			if b != 0 {
				t.Fatalf("%s: disk written although the bundle did not verify", node)
			}
		}
	}
}

// A machine killed mid-install: the lane fails within 2 s, naming the node
// and showing its console tail.
func TestBaremetalISOMachineKilled(t *testing.T) {
	cfg := runConfig(t)
	var killedAt time.Time
	r, err := BaremetalISO(context.Background(), cfg, BaremetalOptions{
		afterStart: func(node string, m *vm.Machine, srv *deployer.PhoneHomeServer) {
			if node != "baremetal-qemu-worker" {
				return
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if _, err := srv.WaitPhase(ctx, node, bootstrap.PhasePlanFetched); err == nil {
					killedAt = time.Now()
					m.Kill()
				}
			}()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || killedAt.IsZero() {
		t.Fatalf("passed=%v killed=%v", r.Passed(), !killedAt.IsZero())
	}
	if !strings.Contains(r.Reason, "baremetal-qemu-worker") || !strings.Contains(r.Reason, "console of baremetal-qemu-worker") {
		t.Fatalf("reason does not name the node and its console:\n%s", r.Reason)
	}
	var failedAt time.Time
	for _, s := range r.Steps {
		if s.Node == "baremetal-qemu-worker" && s.Status == ultracloud.StatusFail {
			failedAt = s.Finished
		}
	}
	if d := failedAt.Sub(killedAt); d > 2*time.Second || d < 0 {
		t.Fatalf("failure recorded %v after the kill", d)
	}
}

func TestTimingOf(t *testing.T) {
	r := ultracloud.NewReport("x", ultracloud.HostEnv{})
	t0 := r.Started
	r.AddStep(ultracloud.Step{Name: "a", Node: "n1", Started: t0, Finished: t0.Add(3 * time.Second)})
	r.AddStep(ultracloud.Step{Name: "b", Node: "n1", Started: t0.Add(3 * time.Second), Finished: t0.Add(5 * time.Second)})
	r.AddStep(ultracloud.Step{Name: "a", Node: "n2", Started: t0, Finished: t0.Add(4 * time.Second)})
	r.Finished = t0.Add(8 * time.Second)
	tm := TimingOf(r)
	if tm.Longest != 5*time.Second || tm.Overhead != 3*time.Second || tm.Ratio() != 3.0/8 {
		t.Fatalf("%+v", tm)
	}
}
