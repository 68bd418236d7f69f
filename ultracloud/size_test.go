package ultracloud

import (
	"encoding/json"
	"testing"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want Size
		bad  bool
	}{
		{"512M", 512 * MiB, false}, {"20G", 20 * GiB, false}, {"20GiB", 20 * GiB, false},
		{"1.5T", TiB + TiB/2, false}, {"4096", 4096, false}, {"1k", KiB, false}, {"100MB", 100 * MiB, false},
		{"", 0, true}, {"-1G", 0, true}, {"G", 0, true}, {"1X", 0, true}, {"NaN", 0, true}, {"1e30T", 0, true},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v bad=%v", c.in, got, err, c.want, c.bad)
		}
	}
	if s := (20 * GiB).String(); s != "20G" {
		t.Errorf("String %s", s)
	}
	var s Size
	if err := json.Unmarshal([]byte(`-5`), &s); err == nil {
		t.Error("negative JSON size accepted")
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1.5T", "20GiB", "0", "9e18"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err == nil && v < 0 {
			t.Fatalf("%q parsed negative %d", s, v)
		}
		if err == nil {
			back, err := ParseSize(v.String())
			if err != nil || back != v {
				t.Fatalf("%q -> %d -> %q -> %d %v", s, v, v.String(), back, err)
			}
		}
	})
}
