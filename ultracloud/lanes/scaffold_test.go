package lanes

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// The scaffold owns the run: it resets what the run owns and nothing
// else, records steps, events and artifacts, and writes the report once
// with its timeline listed.
func TestExecuteOwnsTheRun(t *testing.T) {
	work := t.TempDir()
	cfg := ultracloud.RunConfig{WorkDir: work, Host: ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG}}
	keep := filepath.Join(work, "cache.bin")
	os.WriteFile(keep, []byte("user data"), 0o644)
	stale := filepath.Join(work, "state", "stale")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("earlier run"), 0o644)

	r, err := Execute(context.Background(), cfg, Spec{Name: "owned"}, func(ctx context.Context, r *Run) error {
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the earlier run's state survived: %v", err)
		}
		if r.Scaled(time.Second) != 3*time.Second {
			t.Errorf("TCG scaling %v", r.Scaled(time.Second))
		}
		r.Event("node01", "kill", "SIGKILL")
		r.Step(ctx, "node01", "survive", func(context.Context) error { return nil })
		r.Artifact("note", keep)
		return nil
	})
	if err != nil || !r.Passed() {
		t.Fatalf("%v %+v", err, r)
	}
	if data, _ := os.ReadFile(keep); string(data) != "user data" {
		t.Fatal("a file the run does not own was touched")
	}
	var back ultracloud.Report
	data, err := os.ReadFile(filepath.Join(work, "report", "report.json"))
	if err != nil || json.Unmarshal(data, &back) != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, a := range back.Artifacts {
		names[a.Name] = true
	}
	if !names["timeline"] || !names["note"] || len(back.Events) != 1 || back.RunID != r.RunID {
		t.Fatalf("report.json: artifacts %v events %v run %s", names, back.Events, back.RunID)
	}
	svg, _ := os.ReadFile(filepath.Join(work, "report", "timeline.svg"))
	if !strings.Contains(string(svg), "kill") {
		t.Fatal("the timeline does not show the event")
	}
}

func TestExecuteStatuses(t *testing.T) {
	cfg := ultracloud.RunConfig{Host: ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG}}
	cases := []struct {
		name   string
		fn     LaneFunc
		status ultracloud.Status
		reason string
	}{
		{"pass", func(ctx context.Context, r *Run) error {
			return r.Step(ctx, "", "a", func(context.Context) error { return nil })
		}, ultracloud.StatusPass, ""},
		{"failed step", func(ctx context.Context, r *Run) error {
			r.Step(ctx, "n1", "a", func(context.Context) error { return errors.New("boom") })
			return nil
		}, ultracloud.StatusFail, "n1/a: boom"},
		{"error", func(ctx context.Context, r *Run) error { return errors.New("no disk") }, ultracloud.StatusFail, "no disk"},
		{"skipped member", func(ctx context.Context, r *Run) error {
			r.Step(ctx, "", "a", func(context.Context) error { return nil })
			r.Skip("", "b", "not implemented")
			return nil
		}, ultracloud.StatusIncomplete, "b"},
		{"panic", func(ctx context.Context, r *Run) error { panic("bug") }, ultracloud.StatusFail, "panicked: bug"},
		{"unknown node", func(ctx context.Context, r *Run) error {
			_, err := r.Boot(ctx, "node99")
			return err
		}, ultracloud.StatusFail, "no node \"node99\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Execute(context.Background(), cfg, Spec{Name: c.name}, c.fn)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != c.status || !strings.Contains(r.Reason, c.reason) {
				t.Fatalf("status %s reason %q, want %s %q", r.Status, r.Reason, c.status, c.reason)
			}
		})
	}
}
