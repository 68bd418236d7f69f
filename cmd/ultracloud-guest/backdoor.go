package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/photoncloud/testkit/ultracloud"
)

// Greeting is what the NixOS test driver waits for before sending commands.
const greeting = "Spawning backdoor root shell...\n"

// backdoor serves the NixOS test driver's root shell on dev (a virtconsole),
// byte-compatible with nixos/modules/testing/test-instrumentation.nix: the
// port is made raw without echo, the greeting is written to it, and
// `bash --norc DEV` reads commands from it with stdout on it and stderr on
// the serial console. The shell is restarted whenever it exits.
func (g *guest) backdoor(dev string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			g.logf("no %s: the backdoor shell is off (add a virtconsole to get it)", dev)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if script := credential(backdoorScriptKey); script != "" {
		g.backdoorScript(script)
		return
	}
	first := true
	g.respawn("backdoor shell", func() (<-chan syscall.WaitStatus, error) {
		tty, err := os.OpenFile(dev, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, err
		}
		defer tty.Close()
		if err := makeRaw(int(tty.Fd())); err != nil {
			g.logf("backdoor: raw mode: %v", err)
		}
		fmt.Fprintln(os.Stderr, "connecting to host...")
		tty.WriteString(greeting)
		if first {
			g.marker(ultracloud.PhaseShellReady, "dev", dev)
			first = false
		}
		_, done, err := g.procs.startAttr([]string{"/bin/bash", "--norc", dev}, backdoorEnv(), []*os.File{tty, tty, os.Stderr}, "/tmp", &syscall.SysProcAttr{Setsid: true})
		return done, err
	})
}

// respawn starts what start starts again whenever it ends (a second after a
// failed start), until a power verb began the shutdown.
func (g *guest) respawn(what string, start func() (<-chan syscall.WaitStatus, error)) {
	for {
		done, err := start()
		if err != nil {
			g.logf("%s: %v", what, err)
			time.Sleep(time.Second)
			continue
		}
		ws := <-done
		if g.stopping.Load() {
			g.logf("%s ended (%s) during shutdown", what, describe(ws))
			return
		}
		g.logf("%s ended (%s); restarting", what, describe(ws))
		time.Sleep(200 * time.Millisecond)
	}
}

// backdoorScriptKey names a backdoor script handed to the guest (base64,
// as an SMBIOS OEM string or on the command line): the guest runs it as
// the backdoor instead of its own loop, e.g. the script of nixpkgs'
// test-instrumentation.nix, so the SDK's client is tested against it.
const backdoorScriptKey = "ultracloud.backdoor-script="

// backdoorEnv is the environment NixOS's backdoor.service gives its shell.
func backdoorEnv() []string {
	return []string{"PATH=/bin:/sbin:/usr/bin", "HOME=/root", "USER=root", "DISPLAY=:0.0", "TERM=dumb", "LANG=C", "PAGER=", "PS1="}
}

// backdoorScript runs a handed backdoor script with bash (it opens
// /dev/hvc0, greets and execs the shell itself) and starts it again when
// it ends, outside of a shutdown.
func (g *guest) backdoorScript(b64 string) {
	script, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		g.logf("backdoor script: %v", err)
		return
	}
	path := "/run/ultracloud/backdoor.sh"
	if err := os.MkdirAll("/run/ultracloud", 0o755); err != nil {
		g.logf("backdoor script: %v", err)
		return
	}
	if err := os.WriteFile(path, script, 0o755); err != nil {
		g.logf("backdoor script: %v", err)
		return
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	g.logf("backdoor: running the handed script (%d bytes)", len(script))
	g.marker(ultracloud.PhaseShellReady, "dev", "/dev/hvc0", "script", "handed")
	g.respawn("backdoor script", func() (<-chan syscall.WaitStatus, error) {
		_, done, err := g.procs.startAttr([]string{"/bin/bash", path}, backdoorEnv(), []*os.File{devnull, os.Stdout, os.Stderr}, "/", &syscall.SysProcAttr{Setsid: true})
		return done, err
	})
}

// makeRaw is `stty raw -echo`: no line discipline, no echo, no CR/NL mapping.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
