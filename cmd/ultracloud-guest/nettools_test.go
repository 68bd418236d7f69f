package main

import (
	"io"
	"net"
	"testing"
)

func TestNCZeroIPv4AndIPv6(t *testing.T) {
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", network)
		if err != nil {
			t.Skipf("%s: %v", network, err)
		}
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		if code := ncMain([]string{"-z", "-w", "2", host, port}, io.Discard); code != 0 {
			t.Errorf("nc -z %s %s: exit %d with a listener", host, port, code)
		}
		ln.Close()
		if code := ncMain([]string{"-zv", host, port}, io.Discard); code != 1 {
			t.Errorf("nc -zv %s %s: exit %d without a listener", host, port, code)
		}
	}
}

func TestTimeoutExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"0.3", "sleep", "5"}, 124},
		{[]string{"--preserve-status", "0.3", "sleep", "5"}, 128 + 15},
		{[]string{"-s", "KILL", "0.3", "sleep", "5"}, 124},
		{[]string{"5", "sh", "-c", "exit 7"}, 7},
		{[]string{"5", "true"}, 0},
		{[]string{"5", "/nonexistent/cmd"}, 127},
		{[]string{"x", "true"}, 125},
		{[]string{"-s", "NOPE", "1", "true"}, 125},
	}
	for _, c := range cases {
		if got := timeoutMain(c.args, io.Discard); got != c.want {
			t.Errorf("timeout %v: exit %d, want %d", c.args, got, c.want)
		}
	}
	if d, err := parseDuration("1.5m"); err != nil || d.Seconds() != 90 {
		t.Fatalf("1.5m = %v %v", d, err)
	}
}
