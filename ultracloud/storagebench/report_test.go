package storagebench

import (
	"errors"
	"strings"
	"testing"
)

func sample(seqWrite, randRead, p99 float64) Report {
	return Report{RunID: "r", Disks: map[string][]Result{"node04": {
		{Name: "seq-write", Kind: SeqWrite, MBps: seqWrite},
		{Name: "rand-read-4k", Kind: RandRead, IOPS: randRead},
		{Name: "fsync-4k", Kind: Fsync, P50ms: 1, P99ms: p99},
	}}, Objects: []ObjectResult{{PutFrom: "node04", GetFrom: "node05", PutMBps: 10, GetMBps: 20}}}
}

func TestCompare(t *testing.T) {
	base := sample(100, 1000, 5)
	for _, tc := range []struct {
		name string
		cur  Report
		want []string
	}{
		{"same", sample(100, 1000, 5), nil},
		{"within 20%", sample(81, 850, 5.9), nil},
		{"throughput halved", sample(50, 1000, 5), []string{"node04 seq-write"}},
		{"latency doubled", sample(100, 1000, 10), []string{"node04 fsync-4k p99"}},
		{"faster is fine", sample(300, 5000, 1), nil},
		{"two, worst first", sample(40, 700, 5), []string{"node04 seq-write", "node04 rand-read-4k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			regs, err := Compare(base, tc.cur, 0.2)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range regs {
				got = append(got, g.Metric)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("regressions %v, want %v", regs, tc.want)
			}
		})
	}
	// A doctored baseline (every value ×2) makes every higher-is-better
	// metric a regression of 50 %.
	doctored := sample(200, 2000, 10)
	doctored.Disks["node04"][2].P50ms = 2
	doctored.Objects[0].PutMBps, doctored.Objects[0].GetMBps = 20, 40
	regs, _ := Compare(doctored, base, 0.2)
	if len(regs) != 4 || !strings.Contains(regs[0].String(), "50% worse") {
		t.Fatalf("doctored: %v", regs)
	}
	cur := base
	cur.Disks = map[string][]Result{"node05": base.Disks["node04"]}
	if _, err := Compare(base, cur, 0.2); !errors.Is(err, ErrMissingMetric) || !strings.Contains(err.Error(), "node04 seq-write") {
		t.Fatalf("missing metrics: %v", err)
	}
}

func TestParse(t *testing.T) {
	for _, bad := range []string{``, `{}`, `[1]`, `{"disks":{"n":[{"name":"x","kind":"write","MBps":-1}]}}`} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrNotReport) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := Parse([]byte(`{"disks":{"n":[{"name":"x","kind":"write","MBps":12}]}}`)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"disks":{"n":[{"name":"x","kind":"write","MBps":12}]}}`))
	f.Add([]byte(`{"objects":[{"putFrom":"a","getFrom":"b","putMBps":1e400}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parse(raw)
		if err != nil {
			return
		}
		// Whatever parses compares with itself without a regression.
		if regs, err := Compare(r, r, 0); err != nil || len(regs) != 0 {
			t.Fatalf("self-compare: %v %v", regs, err)
		}
		var b strings.Builder
		if err := r.WriteSVG(&b, &r); err != nil || !strings.HasSuffix(b.String(), "</svg>\n") {
			t.Fatal(err)
		}
	})
}
