package doubles

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"testing"
	"time"
)

// memExport is an in-memory export counting flushes.
type memExport struct {
	mu      sync.Mutex
	data    []byte
	flushes int
	closed  bool
}

func (m *memExport) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(p, m.data[off:]), nil
}

func (m *memExport) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.data[off:], p), nil
}

func (m *memExport) Size() int64 { return int64(len(m.data)) }
func (m *memExport) Sync() error { m.mu.Lock(); m.flushes++; m.mu.Unlock(); return nil }
func (m *memExport) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

// nbdTestClient speaks the transmission phase as the kernel does.
type nbdTestClient struct {
	c      net.Conn
	cookie uint64
}

func (c *nbdTestClient) do(typ uint16, off uint64, length uint32, data []byte) (uint32, []byte, error) {
	c.cookie++
	hdr := binary.BigEndian.AppendUint32(nil, nbdRequestMagic)
	hdr = binary.BigEndian.AppendUint16(hdr, 0)
	hdr = binary.BigEndian.AppendUint16(hdr, typ)
	hdr = binary.BigEndian.AppendUint64(hdr, c.cookie)
	hdr = binary.BigEndian.AppendUint64(hdr, off)
	hdr = binary.BigEndian.AppendUint32(hdr, length)
	if _, err := c.c.Write(append(hdr, data...)); err != nil {
		return 0, nil, err
	}
	if typ == nbdCmdDisc {
		return 0, nil, nil
	}
	var rep struct {
		Magic, Error uint32
		Cookie       uint64
	}
	if err := binary.Read(c.c, binary.BigEndian, &rep); err != nil {
		return 0, nil, err
	}
	if rep.Magic != nbdReplyMagic || rep.Cookie != c.cookie {
		return 0, nil, fmt.Errorf("reply magic %#x cookie %d, want cookie %d", rep.Magic, rep.Cookie, c.cookie)
	}
	var out []byte
	if typ == nbdCmdRead && rep.Error == 0 {
		out = make([]byte, length)
		if _, err := io.ReadFull(c.c, out); err != nil {
			return 0, nil, err
		}
	}
	return rep.Error, out, nil
}

// An NBD server on loopback: the client negotiates with NBD_OPT_GO, writes,
// reads back, flushes (the export syncs), is refused out-of-range I/O
// without losing the connection, and disconnects cleanly; an unknown
// export is refused by name and the connection stays usable.
func TestNBDServerServesAnExport(t *testing.T) {
	exp := &memExport{data: make([]byte, 1<<20)}
	srv := &NBDServer{Open: func(name string) (NBDExport, error) {
		if name != "vol1" {
			return nil, fmt.Errorf("volume %q: %w", name, fs.ErrNotExist)
		}
		return exp, nil
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := NBDNegotiate(c, "nope"); !errors.Is(err, ErrNBD) || !bytes.Contains([]byte(err.Error()), []byte(`volume "nope"`)) {
		t.Fatalf("unknown export: %v", err)
	}
	c.Close()
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	size, flags, err := NBDNegotiate(c, "vol1")
	if err != nil {
		t.Fatal(err)
	}
	if size != 1<<20 || flags&nbdTFlagSendFlush == 0 {
		t.Fatalf("size %d flags %#x", size, flags)
	}
	cl := &nbdTestClient{c: c}
	payload := bytes.Repeat([]byte("coronafs"), 512) // 4 KiB
	tests := []struct {
		name    string
		typ     uint16
		off     uint64
		length  uint32
		data    []byte
		errCode uint32
		want    []byte
	}{
		{"write", nbdCmdWrite, 8192, 4096, payload, 0, nil},
		{"read back", nbdCmdRead, 8192, 4096, nil, 0, payload},
		{"read zeroes", nbdCmdRead, 0, 512, nil, 0, make([]byte, 512)},
		{"flush", nbdCmdFlush, 0, 0, nil, 0, nil},
		{"read past the end", nbdCmdRead, 1<<20 - 100, 512, nil, nbdEINVAL, nil},
		{"write past the end", nbdCmdWrite, 1 << 20, 512, make([]byte, 512), nbdEINVAL, nil},
		{"unknown command", 99, 0, 0, nil, nbdEINVAL, nil},
		{"trim", nbdCmdTrim, 0, 4096, nil, 0, nil},
		{"read 512 KiB", nbdCmdRead, 0, 512 << 10, nil, 0, append(append(make([]byte, 8192), payload...), make([]byte, 512<<10-8192-4096)...)},
		{"still serving", nbdCmdRead, 8192, 8, nil, 0, payload[:8]},
	}
	for _, tc := range tests {
		code, out, err := cl.do(tc.typ, tc.off, tc.length, tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code != tc.errCode || !bytes.Equal(out, tc.want) {
			t.Fatalf("%s: error %d, %d bytes; want error %d, %d bytes", tc.name, code, len(out), tc.errCode, len(tc.want))
		}
	}
	if !bytes.Equal(exp.data[8192:8192+4096], payload) || exp.flushes != 1 {
		t.Fatalf("export: data written %v, %d flushes", bytes.Equal(exp.data[8192:8192+4096], payload), exp.flushes)
	}
	cl.do(nbdCmdDisc, 0, 0, nil)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server kept the connection after NBD_CMD_DISC")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		exp.mu.Lock()
		closed := exp.closed
		exp.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the export was not closed after the disconnect")
		}
	}
}

// The server's negotiation is a parser of whatever a client sends: it
// must end (error or export) without panicking, whatever the bytes.
func FuzzNBDNegotiation(f *testing.F) {
	opt := func(o uint32, data []byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, nbdOptMagic)
		b = binary.BigEndian.AppendUint32(b, o)
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		return append(b, data...)
	}
	flags := binary.BigEndian.AppendUint32(nil, nbdFlagFixedNewstyle|nbdFlagNoZeroes)
	goData := append(binary.BigEndian.AppendUint32(nil, 1), 'v', 0, 0)
	f.Add(append(flags, opt(nbdOptGo, goData)...))
	f.Add(append(flags, opt(nbdOptExportName, []byte("v"))...))
	f.Add(append(append(flags, opt(nbdOptList, nil)...), opt(nbdOptAbort, nil)...))
	f.Add(append(flags, opt(nbdOptInfo, []byte{0, 0, 0, 9, 1})...))
	f.Add([]byte{0, 0, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &NBDServer{
			Open: func(name string) (NBDExport, error) {
				if name == "v" {
					return &memExport{data: make([]byte, 4096)}, nil
				}
				return nil, fs.ErrNotExist
			},
			List: func() []string { return []string{"v"} },
		}
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard}
		srv.ServeConn(rw) // must return: the input runs out
	})
}
