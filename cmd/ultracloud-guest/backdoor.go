package main

import (
	"os"
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
	first := true
	for {
		tty, err := os.OpenFile(dev, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			g.logf("backdoor: %v", err)
			time.Sleep(time.Second)
			continue
		}
		if err := makeRaw(int(tty.Fd())); err != nil {
			g.logf("backdoor: raw mode: %v", err)
		}
		tty.WriteString(greeting)
		if first {
			g.marker(ultracloud.PhaseShellReady, "dev", dev)
			first = false
		}
		env := append(baseEnv(), "PS1=")
		_, done, err := g.procs.start([]string{"/bin/bash", "--norc", dev}, env, []*os.File{tty, tty, os.Stderr}, true)
		tty.Close()
		if err != nil {
			g.logf("backdoor: %v", err)
			time.Sleep(time.Second)
			continue
		}
		ws := <-done
		if g.stopping.Load() {
			g.logf("backdoor shell ended (%s) during shutdown", describe(ws))
			return
		}
		g.logf("backdoor shell ended (%s); restarting", describe(ws))
		time.Sleep(200 * time.Millisecond)
	}
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
