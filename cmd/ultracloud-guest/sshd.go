package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/photoncloud/testkit/ultracloud"
)

// The harness hands the SSH keys to the guest as credentials (SMBIOS OEM
// strings, else the kernel command line): the host key's ed25519 seed and
// the one public key allowed to log in, both base64.
const (
	sshHostKeyKey    = "ultracloud.ssh.host-key="
	sshAuthorizedKey = "ultracloud.ssh.authorized-key="
)

// sshd serves SSH on port 22 when the harness handed this machine a host
// key and an authorized key: public-key login as root only, exec with exit
// status, interactive shells on a PTY, env and window changes.
func (g *guest) sshd() {
	seed64, auth64 := credential(sshHostKeyKey), credential(sshAuthorizedKey)
	if seed64 == "" || auth64 == "" {
		return
	}
	cfg, err := sshServerConfig(seed64, auth64)
	if err != nil {
		g.logf("sshd: %v", err)
		return
	}
	ln, err := net.Listen("tcp", ":22")
	if err != nil {
		g.logf("sshd: %v", err)
		return
	}
	g.marker(ultracloud.PhaseSSHReady, "port", "22")
	for {
		c, err := ln.Accept()
		if err != nil {
			g.logf("sshd: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go g.sshConn(c, cfg)
	}
}

func sshServerConfig(seed64, auth64 string) (*ssh.ServerConfig, error) {
	seed, err := base64.StdEncoding.DecodeString(seed64)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("host key: want a base64 ed25519 seed of %d bytes", ed25519.SeedSize)
	}
	signer, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, err
	}
	blob, err := base64.StdEncoding.DecodeString(auth64)
	if err != nil {
		return nil, fmt.Errorf("authorized key: %w", err)
	}
	allowed, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("authorized key: %w", err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() != "root" {
				return nil, fmt.Errorf("only root logs in here, not %q", meta.User())
			}
			if !bytes.Equal(key.Marshal(), allowed.Marshal()) {
				return nil, errors.New("unknown public key")
			}
			return nil, nil
		},
	}
	cfg.AddHostKey(signer)
	return cfg, nil
}

func (g *guest) sshConn(c net.Conn, cfg *ssh.ServerConfig) {
	c.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
		case "direct-tcpip":
			go directTCPIP(nc)
			continue
		default:
			nc.Reject(ssh.UnknownChannelType, "only sessions and direct-tcpip")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go g.sshSession(ch, creqs)
	}
}

// session is one SSH session channel.
type session struct {
	g      *guest
	ch     ssh.Channel
	env    []string
	term   string
	pty    *os.File // master, once a PTY was requested
	tty    *os.File // slave
	winsz  unix.Winsize
	closed sync.Once
}

func (g *guest) sshSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	s := &session{g: g, ch: ch}
	defer s.close()
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil {
				s.env = append(s.env, kv.Name+"="+kv.Value)
			}
			req.Reply(true, nil)
		case "pty-req":
			var p struct {
				Term          string
				Cols, Rows    uint32
				Width, Height uint32
				Modes         string
			}
			if err := ssh.Unmarshal(req.Payload, &p); err != nil || s.pty != nil {
				req.Reply(false, nil)
				continue
			}
			master, slave, err := openPTY()
			if err != nil {
				s.g.logf("sshd: pty: %v", err)
				req.Reply(false, nil)
				continue
			}
			s.pty, s.tty, s.term = master, slave, p.Term
			s.resize(p.Cols, p.Rows)
			req.Reply(true, nil)
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			if ssh.Unmarshal(req.Payload, &w) == nil {
				s.resize(w.Cols, w.Rows)
			}
			req.Reply(false, nil)
		case "shell", "exec":
			argv := []string{"/bin/bash", "-l"}
			if req.Type == "exec" {
				var cmd struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
					req.Reply(false, nil)
					continue
				}
				argv = []string{"/bin/bash", "-c", cmd.Command}
			} else if s.pty == nil {
				argv = []string{"/bin/bash"}
			}
			req.Reply(true, nil)
			go func() {
				s.run(argv)
				s.close()
			}()
		default:
			req.Reply(false, nil)
		}
	}
}

func (s *session) resize(cols, rows uint32) {
	if s.pty == nil || cols == 0 || rows == 0 {
		return
	}
	s.winsz = unix.Winsize{Col: uint16(cols), Row: uint16(rows)}
	unix.IoctlSetWinsize(int(s.pty.Fd()), unix.TIOCSWINSZ, &s.winsz)
}

// run runs argv as root in /root with the session's stdio and sends its
// exit status (or signal) before the channel closes.
func (s *session) run(argv []string) {
	env := append(baseEnv(), s.env...)
	if s.term != "" {
		env = append(env, "TERM="+s.term)
	}
	var ws syscall.WaitStatus
	if s.pty != nil {
		_, done, err := s.g.procs.startAttr(argv, env, []*os.File{s.tty, s.tty, s.tty}, "/root",
			&syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0})
		s.tty.Close()
		if err != nil {
			fmt.Fprintf(s.ch.Stderr(), "%v\n", err)
			s.exit(255)
			return
		}
		go func() { io.Copy(s.pty, s.ch) }()
		out := make(chan struct{})
		go func() { io.Copy(s.ch, s.pty); close(out) }() // ends with EIO once the last slave holder exits
		ws = <-done
		drain(out)
	} else {
		inR, inW, err1 := os.Pipe()
		outR, outW, err2 := os.Pipe()
		errR, errW, err3 := os.Pipe()
		if err := errors.Join(err1, err2, err3); err != nil {
			fmt.Fprintf(s.ch.Stderr(), "%v\n", err)
			s.exit(255)
			return
		}
		_, done, err := s.g.procs.startAttr(argv, env, []*os.File{inR, outW, errW}, "/root", &syscall.SysProcAttr{Setsid: true})
		inR.Close()
		outW.Close()
		errW.Close()
		if err != nil {
			inW.Close()
			outR.Close()
			errR.Close()
			fmt.Fprintf(s.ch.Stderr(), "%v\n", err)
			s.exit(255)
			return
		}
		go func() { io.Copy(inW, s.ch); inW.Close() }()
		out := make(chan struct{})
		go func() {
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(s.ch, outR) }()
			go func() { defer wg.Done(); io.Copy(s.ch.Stderr(), errR) }()
			wg.Wait()
			close(out)
		}()
		ws = <-done
		drain(out)
		outR.Close()
		errR.Close()
	}
	if ws.Signaled() {
		s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Message    string
			Lang       string
		}{Signal: signalName(ws.Signal()), Message: ws.Signal().String()}))
		return
	}
	s.exit(ws.ExitStatus())
}

// drain waits for the output copies to end; a background process that
// keeps the output open gets a short grace, then the session ends anyway.
func drain(out <-chan struct{}) {
	select {
	case <-out:
	case <-time.After(3 * time.Second):
	}
}

func (s *session) exit(code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	s.ch.SendRequest("exit-status", false, b[:])
}

func (s *session) close() {
	s.closed.Do(func() {
		s.ch.CloseWrite()
		s.ch.Close()
		if s.pty != nil {
			s.pty.Close()
		}
	})
}

// openPTY opens a pseudo-terminal pair on the guest's devpts.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if master, err = os.OpenFile("/dev/pts/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err != nil {
			return nil, nil, err
		}
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// signalName is the SSH name of a signal (RFC 4254 6.10: without "SIG").
func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM", syscall.SIGFPE: "FPE",
		syscall.SIGHUP: "HUP", syscall.SIGILL: "ILL", syscall.SIGINT: "INT", syscall.SIGKILL: "KILL",
		syscall.SIGPIPE: "PIPE", syscall.SIGQUIT: "QUIT", syscall.SIGSEGV: "SEGV", syscall.SIGTERM: "TERM",
		syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("%d", int(s))
}

// directTCPIP serves a "direct-tcpip" channel (ssh -L, ssh.Client.Dial):
// a TCP connection from the guest to the requested address (RFC 4254 7.2).
func directTCPIP(nc ssh.NewChannel) {
	var req struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip request: "+err.Error())
		return
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(req.Host, fmt.Sprint(req.Port)), 10*time.Second)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() { io.Copy(ch, c); ch.CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, ch); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
	ch.Close()
	c.Close()
}
