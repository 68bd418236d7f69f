package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Greeting is the line the guest prints when its backdoor shell is ready,
// as NixOS's test-instrumentation does.
const Greeting = "Spawning backdoor root shell..."

// Shell is a client of the NixOS test driver's backdoor protocol on a
// virtconsole. The host listens; QEMU connects; the guest greets, then runs
// `bash --norc /dev/hvc0`. Each command is sent as
//
//	timeout N bash -c '<set -euo pipefail; cmd>' | (base64 -w 0; echo)
//
// its stdout read back as one base64 line, then its exit code with
// `echo ${PIPESTATUS[0]}`. Commands are serialised.
type Shell struct {
	// boots counts greetings after the first (guest reboots); the reader
	// bumps it before it queues rebootMark.
	boots    atomic.Int64
	ln       net.Listener
	mu       sync.Mutex // one command at a time; guards owed
	conn     net.Conn
	lines    chan string   // replies, from one reader goroutine
	readErr  error         // why lines closed
	owed     int           // replies abandoned by cancelled calls, to discard
	ready    chan struct{} // closed once greeted (or failed)
	err      error         // set before ready closes on failure
	exited   <-chan struct{}
	describe func() string // console tail etc. for errors
}

func newShell(path string, exited <-chan struct{}, describe func() string) (*Shell, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("backdoor socket: %w", err)
	}
	s := &Shell{ln: ln, ready: make(chan struct{}), lines: make(chan string, 16), exited: exited, describe: describe}
	go s.accept()
	return s, nil
}

func (s *Shell) accept() {
	defer close(s.ready)
	conn, err := s.ln.Accept()
	s.ln.Close()
	if err != nil {
		s.err = fmt.Errorf("backdoor: %w", err)
		return
	}
	s.conn = conn
	r := bufio.NewReaderSize(conn, 1<<20)
	// The greeting may follow other output (e.g. a shell restarted).
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			s.err = fmt.Errorf("%w: backdoor closed before the greeting: %v", ErrExited, err)
			close(s.lines)
			return
		}
		if strings.Contains(line, Greeting) {
			break
		}
	}
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.readErr = err
				close(s.lines)
				return
			}
			if strings.Contains(line, Greeting) {
				// The guest rebooted (or its shell restarted): a new shell
				// greets, as the NixOS driver expects after reboot().
				s.boots.Add(1)
				line = rebootMark
			}
			s.lines <- line
		}
	}()
}

// rebootMark stands in the reply stream for a new greeting.
const rebootMark = "\x00reboot"

// Connected waits for the greeting: bounded by ctx, failing at once when
// QEMU exits.
func (s *Shell) Connected(ctx context.Context) error {
	select {
	case <-s.ready:
		if s.err != nil {
			return fmt.Errorf("%w%s", s.err, s.describe())
		}
		return nil
	case <-s.exited:
		return fmt.Errorf("%w before the backdoor shell greeted%s", ErrExited, s.describe())
	case <-ctx.Done():
		return fmt.Errorf("waiting for the backdoor shell (%q): %w%s", Greeting, ctx.Err(), s.describe())
	}
}

// shellQuote quotes s for bash as one word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Result is a finished guest command.
type Result struct {
	Command  string
	ExitCode int
	Stdout   []byte
}

// Execute runs cmd in the guest (bash, `set -euo pipefail`) and returns its
// exit code and stdout. Stderr goes to the serial console. A context
// deadline becomes the command's `timeout`. err is non-nil only when the
// command could not be run or its result not read: a non-zero exit is a
// Result, not an error.
func (s *Shell) Execute(ctx context.Context, cmd string) (Result, error) {
	res := Result{Command: cmd, ExitCode: -1}
	if err := s.Connected(ctx); err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	timeout := ""
	if dl, ok := ctx.Deadline(); ok {
		secs := int(math.Ceil(time.Until(dl).Seconds()))
		if secs <= 0 {
			return res, fmt.Errorf("guest command %q: %w", cmd, context.DeadlineExceeded)
		}
		timeout = fmt.Sprintf("timeout %d ", secs)
	}
	line := timeout + "bash -c " + shellQuote("set -euo pipefail; "+cmd) + " </dev/null | (base64 -w 0; echo)\n"
	out, err := s.roundTrip(ctx, line)
	if err != nil {
		return res, fmt.Errorf("guest command %q: %w%s", cmd, err, s.describe())
	}
	res.Stdout, err = base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	code, cerr := s.roundTrip(ctx, "echo ${PIPESTATUS[0]}\n")
	if err != nil {
		return res, fmt.Errorf("guest command %q: bad output encoding: %w", cmd, err)
	}
	err = cerr
	if err != nil {
		return res, fmt.Errorf("guest command %q: reading exit code: %w%s", cmd, err, s.describe())
	}
	if res.ExitCode, err = strconv.Atoi(strings.TrimSpace(code)); err != nil {
		return res, fmt.Errorf("guest command %q: exit code %q: %w", cmd, code, err)
	}
	return res, nil
}

// roundTrip writes line and reads one newline-terminated reply, giving up
// when ctx ends or QEMU exits. A reply abandoned on cancellation is owed:
// the guest's `timeout` ends the command, and the next call discards it.
func (s *Shell) roundTrip(ctx context.Context, line string) (string, error) {
	boots := s.boots.Load()
	if _, err := s.conn.Write([]byte(line)); err != nil {
		return "", fmt.Errorf("%w: write to backdoor: %v", ErrExited, err)
	}
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return "", fmt.Errorf("%w: backdoor closed: %v", ErrExited, s.readErr)
			}
			if l == rebootMark {
				// Nothing of the old shell will answer any more.
				s.owed = 0
				if s.boots.Load() > boots {
					return "", fmt.Errorf("%w while %q ran", ErrRebooted, strings.TrimSpace(line))
				}
				continue // a reboot before this command: its reply follows
			}
			if s.owed > 0 {
				s.owed--
				continue
			}
			return l, nil
		case <-s.exited:
			return "", ErrExited
		case <-ctx.Done():
			s.owed++
			return "", ctx.Err()
		}
	}
}

// Succeed runs cmd and returns its stdout; a non-zero exit is an error
// wrapping ErrCommandFailed.
func (s *Shell) Succeed(ctx context.Context, cmd string) (string, error) {
	r, err := s.Execute(ctx, cmd)
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return string(r.Stdout), fmt.Errorf("%w: %q exited %d: %s", ErrCommandFailed, cmd, r.ExitCode, bytes.TrimSpace(r.Stdout))
	}
	return string(r.Stdout), nil
}

// Fail runs cmd and returns its stdout; a zero exit is an error.
func (s *Shell) Fail(ctx context.Context, cmd string) (string, error) {
	r, err := s.Execute(ctx, cmd)
	if err != nil {
		return "", err
	}
	if r.ExitCode == 0 {
		return string(r.Stdout), fmt.Errorf("%w: %q succeeded but was expected to fail", ErrCommandFailed, cmd)
	}
	return string(r.Stdout), nil
}

// retryInterval is how often WaitUntilSucceeds retries.
const retryInterval = 250 * time.Millisecond

// WaitUntilSucceeds runs cmd until it exits 0 and returns its stdout. It
// fails at once when QEMU exits or the guest crashes, else when ctx ends,
// with the last attempt's output.
func (s *Shell) WaitUntilSucceeds(ctx context.Context, cmd string) (string, error) {
	return s.waitUntil(ctx, cmd, func(r Result) (bool, error) { return r.ExitCode == 0, nil })
}

// WaitUntilFails runs cmd until it exits non-zero.
func (s *Shell) WaitUntilFails(ctx context.Context, cmd string) (string, error) {
	return s.waitUntil(ctx, cmd, func(r Result) (bool, error) { return r.ExitCode != 0, nil })
}

func (s *Shell) waitUntil(ctx context.Context, cmd string, done func(Result) (bool, error)) (string, error) {
	var last Result
	for {
		// Each attempt is bounded by its own deadline so one hung command
		// does not eat the whole wait.
		actx, cancel := context.WithTimeout(ctx, 60*time.Second)
		r, err := s.Execute(actx, cmd)
		cancel()
		if err != nil && (errors.Is(err, ErrExited) || errors.Is(err, ErrGuestCrashed)) {
			return string(last.Stdout), err
		}
		if err != nil && ctx.Err() != nil {
			return string(last.Stdout), fmt.Errorf("%w (the wait ended during an attempt; last answer: exit %d, output %q)", err, last.ExitCode, bytes.TrimSpace(last.Stdout))
		}
		if err == nil {
			last = r
			ok, derr := done(r)
			if derr != nil {
				return string(r.Stdout), derr
			}
			if ok {
				return string(r.Stdout), nil
			}
		}
		select {
		case <-ctx.Done():
			return string(last.Stdout), fmt.Errorf("waiting for %q (last exit %d, output %q): %w%s",
				cmd, last.ExitCode, bytes.TrimSpace(last.Stdout), ctx.Err(), s.describe())
		case <-s.exited:
			return string(last.Stdout), fmt.Errorf("%w while waiting for %q%s", ErrExited, cmd, s.describe())
		case <-time.After(retryInterval):
		}
	}
}

// WaitForUnit waits until the systemd unit is active, with the NixOS test
// driver's semantics: it fails at once with ErrUnitFailed when the unit is
// "failed", with ErrUnitInactive when it is "inactive" and systemd has no
// pending jobs (nothing will start it), and when `systemctl show` itself
// fails.
func (s *Shell) WaitForUnit(ctx context.Context, unit string) error {
	_, err := s.waitUntil(ctx, unitQuery(unit), func(r Result) (bool, error) { return unitVerdict(unit, r) })
	return err
}

// UnitActive is one attempt of WaitForUnit: true when the unit is active;
// the same immediate errors (ErrUnitFailed, ErrUnitInactive, a failing
// `systemctl show`); false with a nil error while it may still come up.
func (s *Shell) UnitActive(ctx context.Context, unit string) (bool, error) {
	r, err := s.Execute(ctx, unitQuery(unit))
	if err != nil {
		return false, err
	}
	return unitVerdict(unit, r)
}

// unitQuery asks the unit's ActiveState and, when inactive, the job list
// and the state again (as the driver does, to close the race).
func unitQuery(unit string) string {
	show := "systemctl --no-pager show " + shellQuote(unit) + " --property=ActiveState --value"
	return "st=$(" + show + "); echo \"$st\"; if [ \"$st\" = inactive ]; then systemctl list-jobs --full 2>&1; " + show + "; fi"
}

func unitVerdict(unit string, r Result) (bool, error) {
	if r.ExitCode != 0 {
		return false, fmt.Errorf("%w: retrieving systemctl info for unit %q failed with exit code %d", ErrCommandFailed, unit, r.ExitCode)
	}
	lines := strings.Split(strings.TrimSpace(string(r.Stdout)), "\n")
	switch state := strings.TrimSpace(lines[0]); state {
	case "active":
		return true, nil
	case "failed":
		return false, fmt.Errorf("%w: %s is failed", ErrUnitFailed, unit)
	case "inactive":
		if strings.Contains(string(r.Stdout), "No jobs") && strings.TrimSpace(lines[len(lines)-1]) == "inactive" {
			return false, fmt.Errorf("%w: %s is inactive and there are no pending jobs", ErrUnitInactive, unit)
		}
	}
	return false, nil
}

// SendLine writes line and a newline to the backdoor shell raw, outside the
// command protocol, and reads nothing back: the NixOS driver's
// shell.send (its shutdown() sends "poweroff" this way). Use it only for
// commands that end the shell.
func (s *Shell) SendLine(ctx context.Context, line string) error {
	if err := s.Connected(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.conn.Write([]byte(line + "\n")); err != nil {
		return fmt.Errorf("%w: write to backdoor: %v", ErrExited, err)
	}
	return nil
}

// WaitForOpenPort waits until something accepts TCP connections on port
// in the guest, at addr (default localhost; IPv6 addresses too), with the
// NixOS driver's `nc -z` probe.
func (s *Shell) WaitForOpenPort(ctx context.Context, port int, addr ...string) error {
	a := "localhost"
	if len(addr) > 0 && addr[0] != "" {
		a = addr[0]
	}
	_, err := s.WaitUntilSucceeds(ctx, fmt.Sprintf("nc -z %s %d", shellQuote(a), port))
	return err
}

// awaitReboot holds the shell until the guest greets again: no command
// runs across a planned reboot.
func (s *Shell) awaitReboot(ctx context.Context, reboot func() error) error {
	if err := s.Connected(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := reboot(); err != nil {
		return err
	}
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return fmt.Errorf("%w: backdoor closed during the reboot: %v%s", ErrExited, s.readErr, s.describe())
			}
			if l == rebootMark {
				s.owed = 0
				return nil
			}
		case <-s.exited:
			return fmt.Errorf("%w during the reboot (QEMU runs with -no-reboot unless AllowReboot)%s", ErrExited, s.describe())
		case <-ctx.Done():
			return fmt.Errorf("waiting for the guest to greet after the reboot: %w%s", ctx.Err(), s.describe())
		}
	}
}

// CopyFromGuest reads the guest file guestPath into hostPath.
func (s *Shell) CopyFromGuest(ctx context.Context, guestPath, hostPath string) error {
	out, err := s.Succeed(ctx, "cat "+shellQuote(guestPath))
	if err != nil {
		return err
	}
	return os.WriteFile(hostPath, []byte(out), 0o644)
}

// copyChunk is how much raw data one CopyToGuest command carries.
const copyChunk = 48 << 10

// CopyToGuest writes the host file hostPath to guestPath (mode 0644).
func (s *Shell) CopyToGuest(ctx context.Context, hostPath, guestPath string) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return err
	}
	q := shellQuote(guestPath)
	if _, err := s.Succeed(ctx, "mkdir -p \"$(dirname "+q+")\" && : > "+q); err != nil {
		return err
	}
	for off := 0; off < len(data); off += copyChunk {
		chunk := base64.StdEncoding.EncodeToString(data[off:min(off+copyChunk, len(data))])
		if _, err := s.Succeed(ctx, "echo "+chunk+" | base64 -d >> "+q); err != nil {
			return err
		}
	}
	return nil
}

func (s *Shell) close() {
	s.ln.Close()
	select {
	case <-s.ready:
		if s.conn != nil {
			s.conn.Close()
		}
	default:
	}
}
