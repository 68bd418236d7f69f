package storagebench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// fioArgs is the fio job equivalent to p on file: psync, queue depth 1,
// O_DIRECT, the same block size, region and operation count, and the job
// a thread of fio's process as Run is of ours (--thread). Measured here:
// with fio's default forked job process, its fdatasync latency under CPU
// contention was 2-3 ms against 0.1 ms for the same calls from a thread,
// fio's and ours alike (fio 650 IOPS, ours 5078 in a loaded CI run; with
// --thread 4032 and 5142 under the same load).
func fioArgs(p Pattern, file string) []string {
	args := []string{"--name=" + p.Name, "--filename=" + file, "--thread", "--direct=1", "--ioengine=psync", "--iodepth=1",
		fmt.Sprintf("--bs=%d", p.BlockSize), fmt.Sprintf("--size=%d", p.Size), "--output-format=json"}
	switch p.Kind {
	case SeqWrite:
		args = append(args, "--rw=write", "--end_fsync=1")
	case SeqRead:
		args = append(args, "--rw=read")
	case RandRead, RandWrite:
		args = append(args, "--rw="+p.Kind, fmt.Sprintf("--number_ios=%d", p.Ops))
	case Fsync:
		args = append(args, "--rw=write", "--fdatasync=1", fmt.Sprintf("--number_ios=%d", p.Ops))
	}
	return args
}

// fioResult is the part of fio's JSON output compared.
type fioResult struct {
	Jobs []struct {
		Read  fioSide `json:"read"`
		Write fioSide `json:"write"`
	} `json:"jobs"`
}

type fioSide struct {
	BwBytes float64 `json:"bw_bytes"`
	IOPS    float64 `json:"iops"`
}

// measure is the pattern's headline number: MB/s for sequential
// patterns, operations per second otherwise.
func measure(p Pattern, r Result) float64 {
	if p.Kind == SeqRead || p.Kind == SeqWrite {
		return r.MBps
	}
	return r.IOPS
}

// The measuring code measures what fio measures, within the issue's
// 15 %: on the same file, with the same patterns, interleaved so both see
// the same disk (who goes first alternates). A round is a pair, ours and
// fio's back to back; the ratio compared is the median of the pairs'
// ratios over at least five and at most 21 rounds; the rounds stop once
// it is within bounds. Medians, not bests: this machine's virtual disk
// sometimes answers a whole round two or three times faster (a cache
// below it), for either side, and a best-of picks those. Pairs, not each
// side's median: under a loaded CI host the disk's speed drifts by a
// third within a minute, and a pair sees the same drift (the CI of
// b88c237: medians 1.17 apart, pairs' median 1.14). The figures are
// logged.
func TestComparableWithFio(t *testing.T) {
	if testing.Short() {
		t.Skip("a disk benchmark (30-70 s)")
	}
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Fatalf("no fio (make deps installs Debian's): %v", err)
	}
	file := filepath.Join(t.TempDir(), "bench.dat")
	ctx := context.Background()
	const lo, hi = 0.85, 1.15
	for _, p := range Patterns(256<<20, 4000) {
		var ours, theirs []float64
		ratio := 0.0
		for len(ours) < 21 && (len(ours) < 5 || ratio < lo || ratio > hi) {
			// The second reader of a region may find it in a cache
			// below the virtual disk: who goes first alternates.
			if len(ours)%2 == 0 {
				ours = append(ours, runOurs(ctx, t, file, p))
				theirs = append(theirs, runFio(t, fio, file, p))
			} else {
				theirs = append(theirs, runFio(t, fio, file, p))
				ours = append(ours, runOurs(ctx, t, file, p))
			}
			ratio = pairedRatio(ours, theirs)
		}
		t.Logf("%-14s ours %10.1f  fio %10.1f  (ours/fio %.2f, median of %d rounds' ratios; ours %.0f, fio %.0f)", p.Name, median(ours), median(theirs), ratio, len(ours), ours, theirs)
		if ratio < lo || ratio > hi || math.IsNaN(ratio) {
			t.Errorf("%s: ours %.1f, fio %.1f (medians): rounds' ratio %.2f outside [%.2f, %.2f] after %d rounds", p.Name, median(ours), median(theirs), ratio, lo, hi, len(ours))
		}
	}
}

// pairedRatio is the median of ours[i]/theirs[i].
func pairedRatio(ours, theirs []float64) float64 {
	rs := make([]float64, len(ours))
	for i := range ours {
		rs[i] = ours[i] / theirs[i]
	}
	return median(rs)
}

// median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runOurs is Run's headline number for p on file.
func runOurs(ctx context.Context, t *testing.T, file string, p Pattern) float64 {
	t.Helper()
	rs, err := Run(ctx, file, []Pattern{p})
	if err != nil {
		t.Fatal(err)
	}
	return measure(p, rs[0])
}

// runFio is fio's headline number for p on file.
func runFio(t *testing.T, fio, file string, p Pattern) float64 {
	t.Helper()
	out, err := exec.Command(fio, fioArgs(p, file)...).Output()
	if err != nil {
		t.Fatalf("fio %v: %v", fioArgs(p, file), err)
	}
	var fr fioResult
	if err := json.Unmarshal(out, &fr); err != nil || len(fr.Jobs) != 1 {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	j := fr.Jobs[0]
	switch p.Kind {
	case SeqWrite:
		return j.Write.BwBytes / (1 << 20)
	case SeqRead:
		return j.Read.BwBytes / (1 << 20)
	case RandRead:
		return j.Read.IOPS
	}
	return j.Write.IOPS
}
