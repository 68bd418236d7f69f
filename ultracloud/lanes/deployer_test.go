package lanes

import (
	"reflect"
	"testing"
)

func TestDiffLines(t *testing.T) {
	want := []string{"file 11 a", "link /nix/store/x b"}
	cases := []struct {
		name string
		got  []string
		diff []string
	}{
		{"same", []string{"file 11 a", "link /nix/store/x b"}, nil},
		{"changed", []string{"file 33 a", "link /nix/store/x b"}, []string{"missing on the node: file 11 a", "not host-built: file 33 a"}},
		{"missing", []string{"file 11 a"}, []string{"missing on the node: link /nix/store/x b"}},
		{"extra", []string{"file 11 a", "link /nix/store/x b", "file 44 x"}, []string{"not host-built: file 44 x"}},
	}
	for _, c := range cases {
		if d := diffLines(want, c.got); !reflect.DeepEqual(d, c.diff) {
			t.Errorf("%s: %q, want %q", c.name, d, c.diff)
		}
	}
}
