package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/photoncloud/testkit/ultracloud"
)

// Machine is a running QEMU process with its QMP connection, serial console
// and backdoor shell. It dies with the process that started it (Pdeathsig)
// and on Close.
type Machine struct {
	cfg     Config
	args    []string
	cmd     *exec.Cmd
	sockDir string
	ownDir  bool

	console *Console
	qmp     *QMP
	shell   *Shell

	done    chan struct{} // closed when QEMU has exited
	waitErr error
	stderr  *tailBuffer

	closeOnce sync.Once
}

// Start launches a machine. The context bounds the start-up only (QEMU
// launch and QMP handshake); the machine runs until Close or Kill.
func Start(ctx context.Context, cfg Config) (m *Machine, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	m = &Machine{cfg: cfg, done: make(chan struct{}), stderr: &tailBuffer{max: 16 << 10}}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	if m.cfg.Dir == "" {
		if m.cfg.Dir, err = os.MkdirTemp("", "ultracloud-"+cfg.Name+"-"); err != nil {
			return m, err
		}
		m.ownDir = true
	} else if err = os.MkdirAll(m.cfg.Dir, 0o755); err != nil {
		return m, err
	}
	// unix socket paths are limited to 108 bytes: keep them short.
	if m.cfg.SocketDir != "" {
		if len(m.cfg.SocketDir)+len("/shell") > 107 {
			return m, fmt.Errorf("machine %s: SocketDir %q is too long for unix sockets (at most 100 bytes); use a shorter path", cfg.Name, m.cfg.SocketDir)
		}
		if err = os.MkdirAll(m.cfg.SocketDir, 0o700); err != nil {
			return m, err
		}
		m.sockDir = m.cfg.SocketDir
	} else if m.sockDir, err = os.MkdirTemp("", "uc-"); err != nil {
		return m, err
	}
	p := paths{
		qmp:   filepath.Join(m.sockDir, "qmp"),
		shell: filepath.Join(m.sockDir, "shell"),
		vars:  filepath.Join(m.cfg.Dir, "OVMF_VARS.fd"),
	}
	if err = m.prepare(p); err != nil {
		return m, err
	}
	m.console = newConsole(filepath.Join(m.cfg.Dir, "console.log"))
	if !m.cfg.NoBackdoor {
		if m.shell, err = newShell(p.shell, m.done, m.describe); err != nil {
			return m, err
		}
	}
	if m.cfg.StartScript != "" {
		m.args = scriptArgs(&m.cfg, p)
	} else {
		m.args = commandLine(&m.cfg, p)
	}
	if err = os.WriteFile(filepath.Join(m.cfg.Dir, "qemu-cmdline"), []byte(m.CommandLine()+"\n"), 0o644); err != nil {
		return m, err
	}
	if m.cfg.StartScript != "" {
		for _, d := range []string{"tmp", "shared"} {
			if err = os.MkdirAll(filepath.Join(m.cfg.Dir, d), 0o755); err != nil {
				return m, err
			}
		}
		m.cmd = exec.Command(m.cfg.StartScript, m.args...)
		m.cmd.Env = scriptEnv(&m.cfg)
	} else {
		m.cmd = exec.Command(m.cfg.QEMU, m.args...)
	}
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	m.cmd.Stdin = nil
	m.cmd.Stderr = m.stderr
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		return m, err
	}
	m.cfg.Logger.Info("starting machine", "name", m.cfg.Name, "accel", m.cfg.Host.Accelerator, "cmdline", m.CommandLine())
	if err = m.cmd.Start(); err != nil {
		close(m.done)
		return m, fmt.Errorf("start %s: %w", m.cfg.QEMU, err)
	}
	pumped := make(chan struct{})
	go func() {
		m.console.pump(stdout, m.cfg.ConsoleEcho)
		close(pumped)
	}()
	go func() {
		<-pumped
		m.waitErr = m.cmd.Wait()
		m.cfg.Logger.Info("machine exited", "name", m.cfg.Name, "err", m.waitErr)
		close(m.done)
	}()
	if m.qmp, err = dialQMP(ctx, p.qmp, m.done); err != nil {
		return m, fmt.Errorf("machine %s: %w%s", m.cfg.Name, err, m.describe())
	}
	return m, nil
}

// prepare creates blank disks, the firmware variable store and blkdebug
// rules.
func (m *Machine) prepare(p paths) error {
	if m.cfg.Firmware == ultracloud.FirmwareUEFI {
		if err := copyFile(m.cfg.Host.OVMFVars, p.vars); err != nil {
			return fmt.Errorf("OVMF variables: %w", err)
		}
	}
	for i := range m.cfg.Disks {
		d := &m.cfg.Disks[i]
		if d.Path == "" {
			d.Path = filepath.Join(m.cfg.Dir, d.ID+"."+string(d.Format))
		}
		if _, err := os.Stat(d.Path); errors.Is(err, os.ErrNotExist) {
			if err := CreateDisk(context.Background(), d.Path, d.Format, d.Size); err != nil {
				return err
			}
		}
		if d.Fault != nil {
			if err := os.WriteFile(blkdebugPath(&m.cfg, *d), []byte(blkdebugConfig(*d.Fault)), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateDisk creates a blank image: a sparse file for raw, qemu-img for
// qcow2. It refuses to overwrite an existing file.
func CreateDisk(ctx context.Context, path string, format DiskFormat, size ultracloud.Size) error {
	if size <= 0 {
		return fmt.Errorf("%w: disk %s: size %d", ErrConfig, path, size)
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("disk %s already exists; remove it or attach it as an image", path)
	}
	switch format {
	case FormatRaw, "":
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case FormatQCOW2:
		out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprint(int64(size))).CombinedOutput()
		if err != nil {
			return fmt.Errorf("qemu-img create %s: %v: %s (install qemu-utils)", path, err, out)
		}
		return nil
	}
	return fmt.Errorf("%w: disk format %q", ErrConfig, format)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// Name is the machine's name.
func (m *Machine) Name() string { return m.cfg.Name }

// Dir is the machine's state directory (console log, disks, command line).
func (m *Machine) Dir() string { return m.cfg.Dir }

// Config is the machine's configuration with defaults filled.
func (m *Machine) Config() Config { return m.cfg }

// CommandLine is the exact QEMU command line, shell-quoted for reproduction.
func (m *Machine) CommandLine() string {
	bin := m.cfg.QEMU
	if m.cfg.StartScript != "" {
		bin = m.cfg.StartScript
	}
	parts := []string{shellQuote(bin)}
	for _, a := range m.args {
		if strings.ContainsAny(a, " '\"$\\;&|<>()*?") {
			a = shellQuote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Console is the serial console.
func (m *Machine) Console() *Console { return m.console }

// QMP is the QMP connection.
func (m *Machine) QMP() *QMP { return m.qmp }

// Shell is the backdoor shell (nil with NoBackdoor).
func (m *Machine) Shell() *Shell { return m.shell }

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Exited reports whether QEMU has exited.
func (m *Machine) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Wait waits for QEMU to exit and returns its exit error.
func (m *Machine) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		return m.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PID is QEMU's process id (0 before start).
func (m *Machine) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Shutdown powers the guest off as the NixOS driver's shutdown() does: it
// writes a raw "poweroff" line into the backdoor shell and waits for QEMU
// to exit (bounded by ctx).
func (m *Machine) Shutdown(ctx context.Context) error {
	if err := m.shell.SendLine(ctx, "poweroff"); err != nil {
		return fmt.Errorf("shutdown %s: %w", m.cfg.Name, err)
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown %s: waiting for QEMU to exit: %w%s", m.cfg.Name, ctx.Err(), m.describe())
	}
}

// Reboot reboots the guest as the NixOS driver's reboot() does (Ctrl-Alt-Del)
// and returns once its backdoor shell greets again; no command runs across
// it. The machine needs AllowReboot (else QEMU's -no-reboot ends it).
func (m *Machine) Reboot(ctx context.Context) error {
	if !m.cfg.AllowReboot {
		return fmt.Errorf("%w: %s runs with -no-reboot; set Config.AllowReboot to reboot it", ErrConfig, m.cfg.Name)
	}
	return m.shell.awaitReboot(ctx, func() error { return m.qmp.SendKey(ctx, "ctrl", "alt", "delete") })
}

// Kill ends QEMU with SIGKILL, like pulling the power cord, and waits for
// it to be gone.
func (m *Machine) Kill() error {
	if m.cmd == nil || m.cmd.Process == nil {
		return nil
	}
	if m.Exited() {
		return nil
	}
	m.cfg.Logger.Info("killing machine", "name", m.cfg.Name)
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
	return nil
}

// Close kills QEMU if it still runs, closes connections and removes the
// sockets and, when Start created it, the state directory.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		m.Kill()
		if m.qmp != nil {
			m.qmp.close()
		}
		if m.shell != nil {
			m.shell.close()
		}
		if m.sockDir != "" {
			os.RemoveAll(m.sockDir)
		}
		if m.ownDir {
			os.RemoveAll(m.cfg.Dir)
		}
	})
	return nil
}

// describe renders context for errors: QEMU's stderr and the console tail.
func (m *Machine) describe() string {
	var b strings.Builder
	if m.Exited() {
		fmt.Fprintf(&b, "\nQEMU exited: %v", m.waitErr)
	}
	if s := strings.TrimSpace(m.stderr.String()); s != "" {
		fmt.Fprintf(&b, "\nQEMU stderr:\n  %s", strings.ReplaceAll(s, "\n", "\n  "))
	}
	if m.console != nil {
		if tail := m.console.Tail(20); len(tail) > 0 {
			fmt.Fprintf(&b, "\nconsole of %s (last %d lines, full log %s):\n  %s", m.cfg.Name, len(tail),
				m.console.LogPath(), strings.Join(tail, "\n  "))
		}
	}
	return b.String()
}

// Describe returns QEMU's exit state, stderr and the console tail, for
// error messages and test logs.
func (m *Machine) Describe() string { return m.describe() }

// WaitForConsole waits for a console line matching pattern (a regexp) since
// boot, failing at once if the guest crashes or QEMU exits.
func (m *Machine) WaitForConsole(ctx context.Context, pattern string) (string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", fmt.Errorf("console pattern %q: %w", pattern, err)
	}
	line, err := m.console.Wait(ctx, re)
	if err != nil {
		return "", fmt.Errorf("%s: %w%s", m.cfg.Name, err, m.describe())
	}
	return line, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

var _ io.Writer = (*tailBuffer)(nil)
