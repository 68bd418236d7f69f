package doubles

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// sh runs an ip(8)/ping command on the host, for the test's namespaces.
func sh(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// underlayNS makes two network namespaces joined by a veth pair, the
// "cluster network" of two prismnet nodes, and removes them at the end.
func underlayNS(t *testing.T) (a, b string) {
	t.Helper()
	id := fmt.Sprint(os.Getpid() % 100000)
	a, b = "uct-a"+id, "uct-b"+id
	ua, ub := "ucu-a"+id, "ucu-b"+id
	for _, c := range [][]string{
		{"ip", "netns", "add", a}, {"ip", "netns", "add", b},
		{"ip", "link", "add", ua, "type", "veth", "peer", "name", ub},
		{"ip", "link", "set", ua, "netns", a}, {"ip", "link", "set", ub, "netns", b},
		{"ip", "-n", a, "addr", "add", "192.168.250.1/24", "dev", ua}, {"ip", "-n", b, "addr", "add", "192.168.250.2/24", "dev", ub},
		{"ip", "-n", a, "link", "set", ua, "up"}, {"ip", "-n", b, "link", "set", ub, "up"},
		{"ip", "-n", a, "link", "set", "lo", "up"}, {"ip", "-n", b, "link", "set", "lo", "up"},
	} {
		if out, err := sh(t, c...); err != nil {
			t.Cleanup(func() { sh(t, "ip", "netns", "del", a); sh(t, "ip", "netns", "del", b) })
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	t.Cleanup(func() { sh(t, "ip", "netns", "del", a); sh(t, "ip", "netns", "del", b) })
	return a, b
}

// inNS runs f on a thread in the named network namespace: sockets f
// creates stay in that namespace.
func inNS(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // never hand this thread back
		return err
	}
	return ferr
}

// prismnet builds a real VXLAN overlay between two nodes (each in its own
// network namespace, over a veth "cluster network"), allocates addresses
// in chainfire, and attaches ports (namespaces) that reach each other
// across nodes; the overlay depends on the underlay (cut it: no traffic)
// and a detached port is gone and its address free.
func TestPrismnetOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and builds a VXLAN overlay in network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	nsA, nsB := underlayNS(t)
	cli := oneMember(t, "127.0.0.31", log)
	api := map[string]string{}
	for node, ns := range map[string]string{"a": nsA, "b": nsB} {
		h, err := netns.GetFromName(ns)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		api[node] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
		underlay := map[string]string{"a": "192.168.250.1", "b": "192.168.250.2"}[node]
		cfg := PrismnetConfig{Node: node, Underlay: underlay, HealthAddr: api[node], NetNS: h, TTL: 5 * time.Second}
		spawn(t, func(ctx context.Context) error { return RunPrismnet(ctx, cfg, cli, log) })
	}
	attach := func(node, name string) Port {
		t.Helper()
		var port Port
		waitFor(t, "attach "+name, 60*time.Second, func() error {
			resp, err := http.Post("http://"+api[node]+"/v1/ports/"+name, "", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return json.NewDecoder(resp.Body).Decode(&port)
		})
		return port
	}
	p1, p2 := attach("a", "p1"), attach("b", "p2")
	if p1.IP == p2.IP || !strings.HasPrefix(p1.IP, "10.200.0.") {
		t.Fatalf("addresses %s and %s", p1.IP, p2.IP)
	}
	// p1 serves TCP inside its namespace: every connection gets its name.
	var ln net.Listener
	if err := inNS(p1.NetNS, func() (err error) { ln, err = net.Listen("tcp", p1.IP+":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("p1\n"))
			c.Close()
		}
	}()
	// ping connects from namespace ns to p1's server at ip.
	ping := func(ns, ip string) error {
		var c net.Conn
		err := inNS(ns, func() (err error) { c, err = net.DialTimeout("tcp", ip+":7000", time.Second); return err })
		if err != nil {
			return fmt.Errorf("%s → %s: %w", ns, ip, err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "p1\n" {
			return fmt.Errorf("%s → %s: read %q %v", ns, ip, b, err)
		}
		return nil
	}
	// Node b's root namespace and port p2 reach p1 on node a across VXLAN.
	waitFor(t, "b → p1 across the overlay", 30*time.Second, func() error { return ping(nsB, p1.IP) })
	// A port's first packets wait for ARP across the overlay: retried.
	waitFor(t, "port to port across nodes", 30*time.Second, func() error { return ping(p2.NetNS, p1.IP) })
	// The overlay rides the underlay: cut it, and the ports are apart.
	id := strings.TrimPrefix(nsA, "uct-a")
	sh(t, "ip", "-n", nsA, "link", "set", "ucu-a"+id, "down")
	if err := ping(p2.NetNS, p1.IP); err == nil {
		t.Fatal("p2 reaches p1 with the underlay down")
	}
	sh(t, "ip", "-n", nsA, "link", "set", "ucu-a"+id, "up")
	waitFor(t, "p2 → p1 after the underlay is back", 30*time.Second, func() error { return ping(p2.NetNS, p1.IP) })

	// Detach: the namespace is gone and the address is free for the next.
	req, _ := http.NewRequest(http.MethodDelete, "http://"+api["a"]+"/v1/ports/p1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("detach: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := os.Stat("/run/netns/" + p1.NetNS); !os.IsNotExist(err) {
		t.Fatalf("namespace of a detached port: %v", err)
	}
	// p1's server still listens in its (now unnamed) namespace: what is
	// gone is its link to the overlay.
	if err := ping(p2.NetNS, p1.IP); err == nil {
		t.Fatal("a detached port still answers")
	}
	ln.Close()
	if p3 := attach("b", "p3"); p3.IP != p1.IP {
		t.Fatalf("the freed address %s was not reused (got %s)", p1.IP, p3.IP)
	}
	if resp, err := http.Post("http://"+api["a"]+"/v1/ports/Bad_Name", "", nil); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad port name: %v %v", resp, err)
	}
}
