package storagebench

import (
	"context"
	"path/filepath"
	"testing"
)

func TestMedianOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{389, 66, 371}, 371}, // one round caught by load does not become the result
	} {
		in := append([]float64(nil), c.in...)
		if got := MedianOf(in); got != c.want {
			t.Errorf("MedianOf(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("MedianOf changed its input: %v", in)
			}
		}
	}
}

// Three real rounds on a file: one result per pattern, counting every
// round's operations, with each figure between the rounds' extremes.
func TestRunRounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.dat")
	ps := Patterns(4<<20, 64)
	rs, err := RunRounds(context.Background(), path, ps, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(ps) {
		t.Fatalf("%d results for %d patterns", len(rs), len(ps))
	}
	for i, r := range rs {
		if r.Name != ps[i].Name || r.Rounds != 3 {
			t.Errorf("%s: %+v", ps[i].Name, r)
		}
		per := ps[i].Ops
		if ps[i].Kind == SeqRead || ps[i].Kind == SeqWrite {
			per = int(ps[i].Size / int64(ps[i].BlockSize))
		}
		if r.Ops != 3*per || r.MBps <= 0 || r.IOPS <= 0 {
			t.Errorf("%s: %d ops (want %d), %.1f MB/s, %.0f IOPS", r.Name, r.Ops, 3*per, r.MBps, r.IOPS)
		}
	}
}
