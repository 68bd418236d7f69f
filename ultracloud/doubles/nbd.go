package doubles

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// The NBD protocol (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md),
// fixed newstyle negotiation and simple replies: what the Linux kernel's
// NBD client speaks once a user-space tool has negotiated for it. No Go
// NBD library is served here, so the double speaks it itself; the kernel
// at the other end is the real client.
const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic     = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic     = 0x0003e889045565a9
	nbdRequestMagic = 0x25609513
	nbdReplyMagic   = 0x67446698

	nbdFlagFixedNewstyle = 1 << 0
	nbdFlagNoZeroes      = 1 << 1

	nbdOptExportName = 1
	nbdOptAbort      = 2
	nbdOptList       = 3
	nbdOptInfo       = 6
	nbdOptGo         = 7

	nbdRepAck        = 1
	nbdRepServer     = 2
	nbdRepInfo       = 3
	nbdRepErrUnsup   = 1<<31 | 1
	nbdRepErrInvalid = 1<<31 | 3
	nbdRepErrUnknown = 1<<31 | 6

	nbdInfoExport = 0

	nbdTFlagHasFlags  = 1 << 0
	nbdTFlagSendFlush = 1 << 2
	nbdTFlagSendTrim  = 1 << 5

	nbdCmdRead  = 0
	nbdCmdWrite = 1
	nbdCmdDisc  = 2
	nbdCmdFlush = 3
	nbdCmdTrim  = 4

	nbdEIO    = 5
	nbdEINVAL = 22

	// nbdMaxOption bounds an option's data; nbdMaxRequest a read or write.
	nbdMaxOption  = 64 << 10
	nbdMaxRequest = 32 << 20
)

// ErrNBD is wrapped by every NBD negotiation error.
var ErrNBD = errors.New("nbd")

// NBDExport is one block device an NBD server exports.
type NBDExport interface {
	io.ReaderAt
	io.WriterAt
	// Size is the export's size in bytes.
	Size() int64
	// Sync makes every acknowledged write durable (NBD_CMD_FLUSH).
	Sync() error
	// Close ends the client's use of the export.
	Close() error
}

// NBDServer serves exports over NBD until its listener closes.
type NBDServer struct {
	// Open returns the export of that name (an error wrapping
	// fs.ErrNotExist answers "unknown export").
	Open func(name string) (NBDExport, error)
	// List names the exports (NBD_OPT_LIST); nil refuses to list.
	List func() []string
	// Log receives one line per client; nil logs nothing.
	Log *slog.Logger
}

// Serve accepts clients on ln until ctx ends or ln fails, and closes
// every client's connection before it returns.
func (s *NBDServer) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			err := s.ServeConn(c)
			if s.Log != nil {
				s.Log.Info("nbd client gone", "client", c.RemoteAddr(), "err", err)
			}
		}()
	}
}

// ServeConn negotiates with one client and then serves its requests until
// it disconnects. It returns nil on a clean disconnect.
func (s *NBDServer) ServeConn(rw io.ReadWriter) error {
	exp, name, err := s.negotiate(rw)
	if err != nil || exp == nil {
		return err
	}
	defer exp.Close()
	if s.Log != nil {
		s.Log.Info("nbd export in use", "export", name, "bytes", exp.Size())
	}
	return serveTransmission(rw, exp)
}

type nbdWriter struct {
	w   io.Writer
	err error
}

func (w *nbdWriter) put(vs ...any) {
	for _, v := range vs {
		if w.err == nil {
			w.err = binary.Write(w.w, binary.BigEndian, v)
		}
	}
}

// negotiate runs the fixed-newstyle handshake; it returns the export the
// client chose, or nil when the client aborted.
func (s *NBDServer) negotiate(rw io.ReadWriter) (NBDExport, string, error) {
	w := &nbdWriter{w: rw}
	w.put(uint64(nbdMagic), uint64(nbdOptMagic), uint16(nbdFlagFixedNewstyle|nbdFlagNoZeroes))
	if w.err != nil {
		return nil, "", w.err
	}
	var cflags uint32
	if err := binary.Read(rw, binary.BigEndian, &cflags); err != nil {
		return nil, "", fmt.Errorf("%w: client flags: %w", ErrNBD, err)
	}
	if cflags&nbdFlagFixedNewstyle == 0 || cflags&^uint32(nbdFlagFixedNewstyle|nbdFlagNoZeroes) != 0 {
		return nil, "", fmt.Errorf("%w: client flags %#x: want fixed newstyle", ErrNBD, cflags)
	}
	noZeroes := cflags&nbdFlagNoZeroes != 0
	reply := func(opt, typ uint32, data []byte) error {
		w.put(uint64(nbdRepMagic), opt, typ, uint32(len(data)), data)
		return w.err
	}
	for {
		var hdr struct {
			Magic  uint64
			Option uint32
			Length uint32
		}
		if err := binary.Read(rw, binary.BigEndian, &hdr); err != nil {
			return nil, "", fmt.Errorf("%w: option: %w", ErrNBD, err)
		}
		if hdr.Magic != nbdOptMagic {
			return nil, "", fmt.Errorf("%w: option magic %#x", ErrNBD, hdr.Magic)
		}
		if hdr.Length > nbdMaxOption {
			return nil, "", fmt.Errorf("%w: option %d of %d bytes (at most %d)", ErrNBD, hdr.Option, hdr.Length, nbdMaxOption)
		}
		data := make([]byte, hdr.Length)
		if _, err := io.ReadFull(rw, data); err != nil {
			return nil, "", fmt.Errorf("%w: option data: %w", ErrNBD, err)
		}
		switch hdr.Option {
		case nbdOptAbort:
			reply(hdr.Option, nbdRepAck, nil)
			return nil, "", nil
		case nbdOptList:
			if s.List == nil || len(data) != 0 {
				if err := reply(hdr.Option, nbdRepErrUnsup, []byte("listing is not offered")); err != nil {
					return nil, "", err
				}
				continue
			}
			for _, n := range s.List() {
				b := binary.BigEndian.AppendUint32(nil, uint32(len(n)))
				reply(hdr.Option, nbdRepServer, append(b, n...))
			}
			if err := reply(hdr.Option, nbdRepAck, nil); err != nil {
				return nil, "", err
			}
		case nbdOptExportName:
			// No way to answer an error but to hang up.
			exp, err := s.Open(string(data))
			if err != nil {
				return nil, "", fmt.Errorf("%w: export %q: %w", ErrNBD, data, err)
			}
			w.put(uint64(exp.Size()), uint16(transmissionFlags))
			if !noZeroes {
				w.put(make([]byte, 124))
			}
			if w.err != nil {
				exp.Close()
				return nil, "", w.err
			}
			return exp, string(data), nil
		case nbdOptInfo, nbdOptGo:
			name, ok := parseInfoRequest(data)
			if !ok {
				if err := reply(hdr.Option, nbdRepErrInvalid, []byte("malformed info request")); err != nil {
					return nil, "", err
				}
				continue
			}
			exp, err := s.Open(name)
			if err != nil {
				if err := reply(hdr.Option, nbdRepErrUnknown, []byte(err.Error())); err != nil {
					return nil, "", err
				}
				continue
			}
			info := binary.BigEndian.AppendUint16(nil, nbdInfoExport)
			info = binary.BigEndian.AppendUint64(info, uint64(exp.Size()))
			info = binary.BigEndian.AppendUint16(info, transmissionFlags)
			reply(hdr.Option, nbdRepInfo, info)
			if err := reply(hdr.Option, nbdRepAck, nil); err != nil {
				exp.Close()
				return nil, "", err
			}
			if hdr.Option == nbdOptGo {
				return exp, name, nil
			}
			exp.Close()
		default:
			if err := reply(hdr.Option, nbdRepErrUnsup, []byte("option not supported")); err != nil {
				return nil, "", err
			}
		}
	}
}

const transmissionFlags = nbdTFlagHasFlags | nbdTFlagSendFlush | nbdTFlagSendTrim

// parseInfoRequest reads NBD_OPT_INFO/GO data: a 32-bit name length, the
// name, a 16-bit count of information requests and the requests.
func parseInfoRequest(data []byte) (string, bool) {
	if len(data) < 6 {
		return "", false
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n)+6 > uint64(len(data)) {
		return "", false
	}
	name := string(data[4 : 4+n])
	reqs := binary.BigEndian.Uint16(data[4+n:])
	if int(4+n+2)+2*int(reqs) != len(data) {
		return "", false
	}
	return name, true
}

// serveTransmission answers requests until the client disconnects.
func serveTransmission(rw io.ReadWriter, exp NBDExport) error {
	w := &nbdWriter{w: rw}
	buf := make([]byte, 0, 128<<10)
	for {
		var req struct {
			Magic  uint32
			Flags  uint16
			Type   uint16
			Cookie uint64
			Offset uint64
			Length uint32
		}
		if err := binary.Read(rw, binary.BigEndian, &req); err != nil {
			return fmt.Errorf("%w: request: %w", ErrNBD, err)
		}
		if req.Magic != nbdRequestMagic {
			return fmt.Errorf("%w: request magic %#x", ErrNBD, req.Magic)
		}
		if req.Length > nbdMaxRequest {
			return fmt.Errorf("%w: request of %d bytes (at most %d)", ErrNBD, req.Length, nbdMaxRequest)
		}
		if cap(buf) < int(req.Length) {
			buf = make([]byte, 0, req.Length)
		}
		inRange := req.Offset <= uint64(exp.Size()) && uint64(req.Length) <= uint64(exp.Size())-req.Offset
		var code uint32
		var out []byte
		switch req.Type {
		case nbdCmdRead:
			if !inRange {
				code = nbdEINVAL
				break
			}
			out = buf[:req.Length]
			if _, err := exp.ReadAt(out, int64(req.Offset)); err != nil && !errors.Is(err, io.EOF) {
				code, out = nbdEIO, nil
			}
		case nbdCmdWrite:
			data := buf[:req.Length]
			if _, err := io.ReadFull(rw, data); err != nil {
				return fmt.Errorf("%w: write data: %w", ErrNBD, err)
			}
			switch {
			case !inRange:
				code = nbdEINVAL
			default:
				if _, err := exp.WriteAt(data, int64(req.Offset)); err != nil {
					code = nbdEIO
				}
			}
		case nbdCmdFlush:
			if err := exp.Sync(); err != nil {
				code = nbdEIO
			}
		case nbdCmdTrim:
			if !inRange {
				code = nbdEINVAL
			}
		case nbdCmdDisc:
			return nil
		default:
			code = nbdEINVAL
		}
		w.put(uint32(nbdReplyMagic), code, req.Cookie)
		if code == 0 && out != nil {
			w.put(out)
		}
		if w.err != nil {
			return w.err
		}
	}
}

// NBDNegotiate is the client's side of the fixed-newstyle handshake: it
// asks for export with NBD_OPT_GO and returns the export's size and
// transmission flags. The connection is then in the transmission phase
// (what the kernel's NBD client takes over).
func NBDNegotiate(rw io.ReadWriter, export string) (size uint64, flags uint16, err error) {
	var hello struct {
		Magic, OptMagic uint64
		Flags           uint16
	}
	if err := binary.Read(rw, binary.BigEndian, &hello); err != nil {
		return 0, 0, fmt.Errorf("%w: server greeting: %w", ErrNBD, err)
	}
	if hello.Magic != nbdMagic || hello.OptMagic != nbdOptMagic || hello.Flags&nbdFlagFixedNewstyle == 0 {
		return 0, 0, fmt.Errorf("%w: not a fixed-newstyle NBD server (greeting %#x %#x, flags %#x)", ErrNBD, hello.Magic, hello.OptMagic, hello.Flags)
	}
	w := &nbdWriter{w: rw}
	w.put(uint32(nbdFlagFixedNewstyle | uint32(hello.Flags&nbdFlagNoZeroes)))
	data := binary.BigEndian.AppendUint32(nil, uint32(len(export)))
	data = append(data, export...)
	data = binary.BigEndian.AppendUint16(data, 0)
	w.put(uint64(nbdOptMagic), uint32(nbdOptGo), uint32(len(data)), data)
	if w.err != nil {
		return 0, 0, w.err
	}
	got := false
	for {
		var rep struct {
			Magic  uint64
			Option uint32
			Type   uint32
			Length uint32
		}
		if err := binary.Read(rw, binary.BigEndian, &rep); err != nil {
			return 0, 0, fmt.Errorf("%w: reply: %w", ErrNBD, err)
		}
		if rep.Magic != nbdRepMagic || rep.Length > nbdMaxOption {
			return 0, 0, fmt.Errorf("%w: reply magic %#x, %d bytes", ErrNBD, rep.Magic, rep.Length)
		}
		body := make([]byte, rep.Length)
		if _, err := io.ReadFull(rw, body); err != nil {
			return 0, 0, fmt.Errorf("%w: reply data: %w", ErrNBD, err)
		}
		switch {
		case rep.Type == nbdRepInfo && len(body) >= 12 && binary.BigEndian.Uint16(body) == nbdInfoExport:
			size, flags, got = binary.BigEndian.Uint64(body[2:]), binary.BigEndian.Uint16(body[10:]), true
		case rep.Type == nbdRepAck:
			if !got {
				return 0, 0, fmt.Errorf("%w: export %q: the server acknowledged without its size", ErrNBD, export)
			}
			return size, flags, nil
		case rep.Type&(1<<31) != 0:
			return 0, 0, fmt.Errorf("%w: export %q: server refused (%#x): %s", ErrNBD, export, rep.Type, body)
		}
	}
}
