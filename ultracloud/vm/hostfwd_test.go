package vm

import (
	"net"
	"testing"
)

func TestParseHostForwards(t *testing.T) {
	out := "Hub -1 (net0):\r\n" +
		"  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n" +
		"  TCP[HOST_FORWARD]   3       127.0.0.1 40101       10.0.2.15    22     0     0\r\n" +
		"  TCP[HOST_FORWARD]   4         0.0.0.0  8080       10.0.2.15    80     0     0\r\n" +
		"  TCP[ESTABLISHED]   25       10.0.2.15 51234       10.0.2.2   9000     0     0\r\n" +
		"  TCP[HOST_FORWARD]   5       127.0.0.1 notaport    10.0.2.15    23     0     0\r\n"
	got := ParseHostForwards(out)
	want := map[int]string{22: "127.0.0.1:40101", 80: "127.0.0.1:8080"}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("port %d: %q, want %q (all %v)", k, got[k], v, got)
		}
	}
}

func FuzzParseHostForwards(f *testing.F) {
	f.Add("  TCP[HOST_FORWARD]   3       127.0.0.1 40101       10.0.2.15    22     0     0\n")
	f.Add("TCP[HOST_FORWARD] 1 ::1 1 a 2")
	f.Fuzz(func(t *testing.T, s string) {
		for port, addr := range ParseHostForwards(s) {
			if port <= 0 || port > 65535 {
				t.Fatalf("port %d", port)
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				t.Fatalf("%q: %v", addr, err)
			}
		}
	})
}
