package bootstrap

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLoaderEntry(t *testing.T) {
	cases := []struct {
		name, in string
		want     LoaderEntry
		err      string
	}{
		{"installer's", "title UltraCloud n1 (sys)\nlinux /ultracloud/vmlinuz\ninitrd /ultracloud/initrd.img\noptions console=ttyS0 ultracloud.role=node\n",
			LoaderEntry{Title: "UltraCloud n1 (sys)", Linux: "/ultracloud/vmlinuz", Initrd: []string{"/ultracloud/initrd.img"}, Options: "console=ttyS0 ultracloud.role=node"}, ""},
		{"tabs, comments, two initrds, two options lines, unknown keys", "# c\nlinux\t/k\ninitrd /a\ninitrd /b\noptions a=1\noptions b=2\nversion 6.1\nmachine-id x\n",
			LoaderEntry{Linux: "/k", Initrd: []string{"/a", "/b"}, Options: "a=1 b=2"}, ""},
		{"path cleaned", "linux /x//y/./k\n", LoaderEntry{Linux: "/x/y/k"}, ""},
		{"no linux", "title t\noptions a\n", LoaderEntry{}, "no linux line"},
		{"relative kernel", "linux vmlinuz\n", LoaderEntry{}, `linux "vmlinuz" is not an absolute path`},
		{"escaping initrd", "linux /k\ninitrd /../../etc/shadow\n", LoaderEntry{}, "line 2: initrd"},
		{"two kernels", "linux /a\nlinux /b\n", LoaderEntry{}, "a second linux line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseLoaderEntry([]byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("%+v %v, want %+v", got, err, c.want)
			}
		})
	}
}

func FuzzParseLoaderEntry(f *testing.F) {
	f.Add([]byte("title t\nlinux /ultracloud/vmlinuz\ninitrd /ultracloud/initrd.img\noptions console=ttyS0\n"))
	f.Add([]byte("linux ../x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseLoaderEntry(data)
		if err != nil {
			return
		}
		for _, p := range append([]string{e.Linux}, e.Initrd...) {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
				t.Fatalf("accepted path %q", p)
			}
		}
	})
}
