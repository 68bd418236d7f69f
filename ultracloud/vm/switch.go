package vm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
)

// maxFrame bounds one frame on the wire (jumbo frames included).
const maxFrame = 65550

// ErrSwitch: a switch operation on an unknown or duplicate port.
var ErrSwitch = errors.New("switch")

// PortStats counts a port's frames.
type PortStats struct {
	// Rx: frames received from the machine; Tx: frames sent to it.
	Rx, Tx uint64
	// Dropped: frames from this port the switch did not deliver anywhere
	// (cut, partitioned, or no reachable destination).
	Dropped uint64
}

type swPort struct {
	name string
	path string
	ln   net.Listener

	mu   sync.Mutex // guards conn writes
	conn net.Conn

	rx, tx, dropped atomic.Uint64
}

// Switch is an in-process Ethernet switch for QEMU `-netdev stream`
// clients (frames are a 4-byte big-endian length and the frame). It learns
// MAC addresses, floods broadcast and unknown destinations, and can
// partition ports into groups or cut single ports. It needs no root and no
// kernel bridge.
type Switch struct {
	dir    string
	ownDir bool
	log    *slog.Logger

	mu     sync.Mutex
	ports  map[string]*swPort
	macs   map[[6]byte]*swPort
	groups map[string]int // nil: no partition
	cut    map[string]bool
	closed bool
	wg     sync.WaitGroup
}

var portName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,40}$`)

// NewSwitch creates a switch whose port sockets live in dir (a new
// temporary directory when empty, removed on Close).
func NewSwitch(dir string, logger *slog.Logger) (*Switch, error) {
	s := &Switch{dir: dir, log: logger, ports: map[string]*swPort{}, macs: map[[6]byte]*swPort{}, cut: map[string]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "ucsw-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	}
	return s, nil
}

// Port creates the port called name and returns the unix socket path a
// machine's NIC connects to (NICConfig.SwitchPort).
func (s *Switch) Port(name string) (string, error) {
	if !portName.MatchString(name) {
		return "", fmt.Errorf("%w: port name %q: use letters, digits, '.', '_' or '-'", ErrSwitch, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", fmt.Errorf("%w: closed", ErrSwitch)
	}
	if _, dup := s.ports[name]; dup {
		return "", fmt.Errorf("%w: port %q exists", ErrSwitch, name)
	}
	path := filepath.Join(s.dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("%w: port %q: %v", ErrSwitch, name, err)
	}
	p := &swPort{name: name, path: path, ln: ln}
	s.ports[name] = p
	s.wg.Add(1)
	go s.accept(p)
	return path, nil
}

func (s *Switch) accept(p *swPort) {
	defer s.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.conn != nil {
			p.conn.Close() // a reconnecting NIC replaces the old link
		}
		p.conn = c
		p.mu.Unlock()
		s.wg.Add(1)
		go s.read(p, c)
	}
}

func (s *Switch) read(p *swPort, c net.Conn) {
	defer s.wg.Done()
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [4]byte
	buf := make([]byte, maxFrame)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			s.log.Warn("switch: oversized frame, dropping link", "port", p.name, "len", n)
			c.Close()
			return
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return
		}
		p.rx.Add(1)
		s.forward(p, buf[:n])
	}
}

// reachable reports whether a and b may exchange frames; mu is held.
func (s *Switch) reachable(a, b string) bool {
	if a == b || s.cut[a] || s.cut[b] {
		return false
	}
	if s.groups == nil {
		return true
	}
	ga, oka := s.groups[a]
	gb, okb := s.groups[b]
	return oka && okb && ga == gb
}

func (s *Switch) forward(src *swPort, frame []byte) {
	if len(frame) < 14 {
		src.dropped.Add(1)
		return
	}
	var dst, from [6]byte
	copy(dst[:], frame[0:6])
	copy(from[:], frame[6:12])
	s.mu.Lock()
	if from[0]&1 == 0 {
		s.macs[from] = src
	}
	var targets []*swPort
	if out, ok := s.macs[dst]; ok && dst[0]&1 == 0 {
		if s.reachable(src.name, out.name) {
			targets = append(targets, out)
		}
	} else {
		for _, p := range s.ports {
			if s.reachable(src.name, p.name) {
				targets = append(targets, p)
			}
		}
	}
	s.mu.Unlock()
	if len(targets) == 0 {
		src.dropped.Add(1)
		return
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
	for _, p := range targets {
		p.mu.Lock()
		if p.conn != nil {
			if _, err := p.conn.Write(slices.Concat(hdr[:], frame)); err == nil {
				p.tx.Add(1)
			}
		}
		p.mu.Unlock()
	}
}

// Partition splits the ports into groups: frames pass only between ports
// of the same group. Ports named in no group are cut off from all others.
func (s *Switch) Partition(groups ...[]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := map[string]int{}
	for i, grp := range groups {
		for _, name := range grp {
			if _, ok := s.ports[name]; !ok {
				return fmt.Errorf("%w: partition names unknown port %q", ErrSwitch, name)
			}
			if _, dup := g[name]; dup {
				return fmt.Errorf("%w: port %q is in two groups", ErrSwitch, name)
			}
			g[name] = i
		}
	}
	s.groups = g
	return nil
}

// Heal removes the partition (cut ports stay cut).
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = nil
}

// Cut isolates one port: nothing goes in or out until Restore.
func (s *Switch) Cut(name string) error { return s.setCut(name, true) }

// Restore undoes Cut.
func (s *Switch) Restore(name string) error { return s.setCut(name, false) }

func (s *Switch) setCut(name string, cut bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ports[name]; !ok {
		return fmt.Errorf("%w: unknown port %q", ErrSwitch, name)
	}
	s.cut[name] = cut
	return nil
}

// Stats returns the counters of a port.
func (s *Switch) Stats(name string) (PortStats, error) {
	s.mu.Lock()
	p, ok := s.ports[name]
	s.mu.Unlock()
	if !ok {
		return PortStats{}, fmt.Errorf("%w: unknown port %q", ErrSwitch, name)
	}
	return PortStats{Rx: p.rx.Load(), Tx: p.tx.Load(), Dropped: p.dropped.Load()}, nil
}

// Close stops the switch, closes every link and removes its sockets.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ports := s.ports
	s.mu.Unlock()
	for _, p := range ports {
		p.ln.Close()
		p.mu.Lock()
		if p.conn != nil {
			p.conn.Close()
		}
		p.mu.Unlock()
		os.Remove(p.path)
	}
	s.wg.Wait()
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
	return nil
}
