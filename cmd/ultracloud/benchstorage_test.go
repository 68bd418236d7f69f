package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/storagebench"
)

// benchStorage runs bench-storage on the running cluster of state, twice:
// the first run, against a baseline from a host far slower
// (testdata/bench-slow-baseline.json, every throughput tiny and every
// latency huge), passes and writes bench.json and bench.svg, each figure
// the median of 3 interleaved rounds; the second, against a doctored copy
// of the first (every value ×2), exits 1 naming the metrics worse than
// allowed. A run against its own first run is no test here: under TCG
// even medians of 5 rounds move by more than 20 % between two runs a
// minute apart on an idle host (measured: node04 seq-read 421 then 157
// MB/s, rand-read 1078 then 670 IOPS, fsync p99 16 then 28 ms), because
// the five idle TCG neighbours take about a host core between them;
// regression tracking wants KVM hosts.
func benchStorage(t *testing.T, state string) {
	first := t.TempDir()
	begin := time.Now()
	// Workers only: the control-plane disks hold chainfire's data, and
	// rounds of O_DIRECT patterns on them under CI load stalled etcd (the
	// matrix after it saw SERVFAIL and 500s).
	small := []string{"--nodes", "node04,node05", "--size", "8", "--ops", "200", "--rounds", "3", "--objects", "4", "--object-size", "65536"}
	slow, err := filepath.Abs(filepath.Join("testdata", "bench-slow-baseline.json"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, append([]string{"cluster", "bench-storage", "--state", state, "--work-dir", first, "--baseline", slow}, small...)...)
	t.Logf("bench-storage in %v:\n%s\n%s", time.Since(begin).Round(time.Second), out, errOut)
	if code != 0 || !strings.Contains(out, "lane fresh-bench-storage: pass") || !strings.Contains(out+errOut, "no metric worse than 20% against the baseline") {
		t.Fatalf("bench-storage against a slower host's baseline: exit %d, want 0", code)
	}
	bench := filepath.Join(first, "report", "bench.json")
	rep, err := storagebench.Load(bench)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Disks) != 2 || len(rep.Objects) != 1 || rep.Objects[0].Rounds != 3 {
		t.Fatalf("bench.json: %d nodes, %d object results", len(rep.Disks), len(rep.Objects))
	}
	for node, rs := range rep.Disks {
		for _, r := range rs {
			if r.Rounds != 3 {
				t.Errorf("%s %s: %d rounds, want 3", node, r.Name, r.Rounds)
			}
		}
	}
	if svg, err := os.ReadFile(filepath.Join(first, "report", "bench.svg")); err != nil || !strings.Contains(string(svg), "node04 seq-write") {
		t.Fatalf("bench.svg: %v", err)
	}
	for _, m := range rep.Metrics() {
		t.Logf("%-28s %10.3f %s", m.Name, m.Value, m.Unit)
	}

	// Doctored: every value ×2 (throughput and latency alike).
	doctored := writeReport(t, scaled(rep, 2))
	out, errOut, code = cli(t, append([]string{"cluster", "bench-storage", "--state", state, "--work-dir", t.TempDir(), "--baseline", doctored}, small...)...)
	if code != 1 || !strings.Contains(out, "storage regression") || !strings.Contains(out, "% worse)") {
		t.Fatalf("doctored baseline: exit %d, want 1 naming the metrics:\n%s\n%s", code, out, errOut)
	}
	t.Logf("doctored baseline fails as it must: %s", firstLine(out[strings.Index(out, "reason:"):]))
}

// scaled is r with every throughput multiplied by f and every latency by
// 1/f for f < 1 (a slower host), or every value by f for f > 1 (the
// issue's doctored baseline).
func scaled(r storagebench.Report, f float64) storagebench.Report {
	lat := f
	if f < 1 {
		lat = 1 / f
	}
	out := r
	out.Disks = map[string][]storagebench.Result{}
	for n, rs := range r.Disks {
		for _, x := range rs {
			x.MBps, x.IOPS, x.P50ms, x.P99ms = x.MBps*f, x.IOPS*f, x.P50ms*lat, x.P99ms*lat
			out.Disks[n] = append(out.Disks[n], x)
		}
	}
	out.Objects = nil
	for _, o := range r.Objects {
		o.PutMBps, o.GetMBps = o.PutMBps*f, o.GetMBps*f
		out.Objects = append(out.Objects, o)
	}
	return out
}

func writeReport(t *testing.T, r storagebench.Report) string {
	p := filepath.Join(t.TempDir(), "baseline.json")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	return p
}
