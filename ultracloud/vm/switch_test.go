package vm

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// streamClient is what QEMU's -netdev stream does on the wire: named so,
// it is the only stand-in in these tests, for a NIC.
type streamClient struct {
	t    *testing.T
	c    net.Conn
	mac  [6]byte
	recv chan []byte
}

func dialPort(t *testing.T, path string, last byte) *streamClient {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	sc := &streamClient{t: t, c: c, mac: [6]byte{0x52, 0x54, 0, 0, 0, last}, recv: make(chan []byte, 64)}
	go func() {
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				close(sc.recv)
				return
			}
			f := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(c, f); err != nil {
				close(sc.recv)
				return
			}
			sc.recv <- f
		}
	}()
	t.Cleanup(func() { c.Close() })
	return sc
}

var broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (sc *streamClient) send(dst [6]byte, payload string) {
	f := append(append(append([]byte{}, dst[:]...), sc.mac[:]...), 0x08, 0x00)
	f = append(f, payload...)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(f)))
	if _, err := sc.c.Write(append(hdr[:], f...)); err != nil {
		sc.t.Fatal(err)
	}
}

// expect returns whether a frame with payload arrives within d.
func (sc *streamClient) expect(payload string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-sc.recv:
			if !ok {
				return false
			}
			if string(f[14:]) == payload {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func TestSwitchForwarding(t *testing.T) {
	s, err := NewSwitch("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cl := map[string]*streamClient{}
	for i, n := range []string{"a", "b", "c"} {
		p, err := s.Port(n)
		if err != nil {
			t.Fatal(err)
		}
		cl[n] = dialPort(t, p, byte(i+1))
	}
	time.Sleep(50 * time.Millisecond) // accepts
	a, b, c := cl["a"], cl["b"], cl["c"]

	// Broadcast floods; replies teach the switch where each MAC is.
	a.send(broadcast, "hello")
	if !b.expect("hello", time.Second) || !c.expect("hello", time.Second) {
		t.Fatal("broadcast not flooded")
	}
	b.send(a.mac, "to-a")
	if !a.expect("to-a", time.Second) {
		t.Fatal("unicast lost")
	}
	if c.expect("to-a", 100*time.Millisecond) {
		t.Fatal("learned unicast flooded to c")
	}

	if err := s.Partition([]string{"a"}, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	b.send(a.mac, "blocked")
	c.send(b.mac, "b-c")
	if a.expect("blocked", 200*time.Millisecond) {
		t.Fatal("a reached across the partition")
	}
	if !b.expect("b-c", time.Second) {
		t.Fatal("b-c broken by partition")
	}
	st, _ := s.Stats("b")
	if st.Dropped == 0 {
		t.Fatalf("dropped not counted: %+v", st)
	}
	s.Heal()
	b.send(a.mac, "healed")
	if !a.expect("healed", time.Second) {
		t.Fatal("heal did not restore")
	}
	if err := s.Cut("c"); err != nil {
		t.Fatal(err)
	}
	a.send(broadcast, "all")
	if !b.expect("all", time.Second) || c.expect("all", 200*time.Millisecond) {
		t.Fatal("cut port still receives")
	}
	s.Restore("c")
	a.send(broadcast, "back")
	if !c.expect("back", time.Second) {
		t.Fatal("restore failed")
	}
	// a sent hello, all, back; it received to-a and healed ("blocked" was dropped).
	if st, _ := s.Stats("a"); st.Rx != 3 || st.Tx != 2 {
		t.Fatalf("counters of a: %+v, want Rx 3 Tx 2", st)
	}
}

func TestSwitchErrors(t *testing.T) {
	s, _ := NewSwitch("", nil)
	defer s.Close()
	s.Port("a")
	for name, err := range map[string]error{
		"dup port":      func() error { _, e := s.Port("a"); return e }(),
		"bad name":      func() error { _, e := s.Port("a/b"); return e }(),
		"unknown group": s.Partition([]string{"zz"}),
		"two groups":    s.Partition([]string{"a"}, []string{"a"}),
		"unknown cut":   s.Cut("zz"),
		"unknown stats": func() error { _, e := s.Stats("zz"); return e }(),
	} {
		if !errors.Is(err, ErrSwitch) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSwitchOversizedFrameDropsLink(t *testing.T) {
	s, _ := NewSwitch("", nil)
	defer s.Close()
	p, _ := s.Port("a")
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0xff, 0xff, 0xff, 0xff})
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("link not dropped")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]Config{
		"no kernel":        {Firmware: "direct-kernel"},
		"no ovmf":          {Firmware: "uefi"},
		"bad mac":          {Kernel: "k", NICs: []NICConfig{{MAC: "zz", User: true}}},
		"dup mac":          {Kernel: "k", NICs: []NICConfig{{MAC: "52:54:00:00:00:01", User: true}, {MAC: "52:54:00:00:00:01", User: true}}},
		"nic both":         {Kernel: "k", NICs: []NICConfig{{MAC: "52:54:00:00:00:01", User: true, SwitchPort: "/x"}}},
		"disk no size":     {Kernel: "k", Disks: []DiskConfig{{ID: "d"}}},
		"bad fault":        {Kernel: "k", Disks: []DiskConfig{{ID: "d", Size: 1, Fault: &DiskFault{Op: "trim"}}}},
		"bad accel":        {Kernel: "k", Host: ultracloud.HostEnv{Accelerator: "hvf"}},
		"fwd without user": {Kernel: "k", NICs: []NICConfig{{MAC: "52:54:00:00:00:01", SwitchPort: "/x", GuestFwd: []GuestFwd{{"a", "b"}}}}},
	}
	for name, c := range cases {
		if err := c.fill(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
