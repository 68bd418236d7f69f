package lanes

import (
	"strings"
	"testing"
)

func TestSameTree(t *testing.T) {
	want := map[string]string{"./a": "11", "./b/c": "22"}
	cases := []struct {
		name, sums, err string
	}{
		{"same", "11  ./a\n22  ./b/c\n", ""},
		{"changed", "11  ./a\n33  ./b/c\n", "./b/c: sha256 33, host built 22"},
		{"missing", "11  ./a\n", "missing ./b/c"},
		{"extra", "11  ./a\n22  ./b/c\n44  ./x\n", "not host-built: ./x"},
	}
	for _, c := range cases {
		err := sameTree(want, c.sums)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}
