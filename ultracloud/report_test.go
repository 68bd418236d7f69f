package ultracloud

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	r := NewReport("baremetal-iso", HostEnv{Accelerator: AccelTCG, AccelReason: "kvm_pvm loaded"})
	t0 := r.Started
	r.AddStep(Step{Name: "phone-home", Node: "a", Started: t0, Finished: t0.Add(2 * time.Second), Status: StatusPass})
	r.AddStep(Step{Name: "active", Node: "a", Started: t0, Finished: t0.Add(time.Second), Status: StatusFail, Reason: "timed out <&>"})
	r.AddStep(Step{Name: "kvm-suite", Status: StatusSkip, Reason: "needs KVM"})
	r.Finish(nil)
	return r
}

func TestReportStatus(t *testing.T) {
	r := sampleReport()
	if r.Status != StatusFail || !strings.Contains(r.Reason, "a/active: timed out") {
		t.Fatalf("status %s reason %q", r.Status, r.Reason)
	}
	ok := NewReport("x", HostEnv{})
	ok.AddStep(Step{Name: "s", Status: StatusPass})
	ok.Finish(nil)
	if !ok.Passed() {
		t.Fatal("want pass")
	}
	skip := NewReport("x", HostEnv{})
	skip.AddStep(Step{Name: "s", Status: StatusSkip})
	skip.Finish(nil)
	if skip.Status != StatusSkip {
		t.Fatalf("all-skipped lane is %s", skip.Status)
	}
	part := NewReport("x", HostEnv{})
	part.AddStep(Step{Name: "a", Status: StatusPass})
	part.AddStep(Step{Name: "b", Status: StatusSkip, Reason: "not here"})
	part.AddStep(Step{Name: "c", Status: StatusSkip, Reason: "not here"})
	part.Finish(nil)
	if part.Status != StatusIncomplete || part.Passed() || part.Counts().String() != "1 passed, 0 failed, 2 skipped" {
		t.Fatalf("a pass with skipped members is %s (%s)", part.Status, part.Counts())
	}
	bad := NewReport("x", HostEnv{})
	bad.AddStep(Step{Name: "s", Status: StatusPass})
	bad.Finish(errors.New("qemu died"))
	if bad.Passed() || bad.Reason != "qemu died" {
		t.Fatal("error must fail the lane")
	}
}

func TestReportJUnitParses(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var got JUnitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got.Tests != 3 || got.Failures != 1 || got.Skipped != 1 || len(got.Suites) != 1 {
		t.Fatalf("counts %+v", got)
	}
	s := got.Suites[0]
	if s.Name != "baremetal-iso" || len(s.Cases) != 3 || s.Cases[1].Failure == nil ||
		s.Cases[1].Failure.Message != "timed out <&>" || s.Cases[0].Classname != "baremetal-iso.a" {
		t.Fatalf("suite %+v", s)
	}
	var accel string
	for _, p := range s.Properties {
		if p.Name == "accelerator" {
			accel = p.Value
		}
	}
	if accel != "tcg" {
		t.Fatalf("accelerator property %q", accel)
	}
}

func TestReportJUnitLaneFailureWithoutSteps(t *testing.T) {
	r := NewReport("x", HostEnv{})
	r.Finish(errors.New("no qemu"))
	j := r.JUnit()
	if j.Tests != 1 || j.Failures != 1 {
		t.Fatalf("%+v", j)
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Lane != r.Lane || len(back.Steps) != 3 || back.Host.Accelerator != AccelTCG || back.Status != StatusFail {
		t.Fatalf("%+v", &back)
	}
	dir := t.TempDir()
	jp, xp, err := r.WriteFiles(dir)
	if err != nil || !strings.HasSuffix(jp, "report.json") || !strings.HasSuffix(xp, "junit.xml") {
		t.Fatal(jp, xp, err)
	}
}

func TestRegistry(t *testing.T) {
	run := func(context.Context, RunConfig) (*Report, error) { return nil, nil }
	r, err := NewRegistry(Lane{Name: "b", Requires: TCGOK, Run: run}, Lane{Name: "a", Requires: KVMRequired, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Names(), ","); got != "a,b" {
		t.Fatal(got)
	}
	if err := r.Register(Lane{Name: "a", Requires: TCGOK, Run: run}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := r.Register(Lane{Name: "c", Requires: TCGOK}); err == nil || !strings.Contains(err.Error(), "no Run") {
		t.Fatalf("lane without Run: %v", err)
	}
	if _, err := r.Lookup("zz"); !errors.Is(err, ErrUnknownLane) || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("lookup: %v", err)
	}
}
