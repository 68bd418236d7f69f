package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"
)

// Power verbs, as systemd and the NixOS test driver use them.
const (
	verbPoweroff = "poweroff"
	verbReboot   = "reboot"
	verbHalt     = "halt"
)

// rebootCmd maps a power verb to reboot(2)'s command.
var rebootCmd = map[string]int{
	verbPoweroff: syscall.LINUX_REBOOT_CMD_POWER_OFF,
	verbReboot:   syscall.LINUX_REBOOT_CMD_RESTART,
	verbHalt:     syscall.LINUX_REBOOT_CMD_HALT,
}

// powerMain is `poweroff`, `reboot` and `halt` (and `systemctl poweroff|
// reboot|halt`): it asks PID 1 to stop the units and power the machine off,
// reboot or halt, as systemd does. Only when PID 1 cannot be reached does it
// call reboot(2) itself (like `poweroff -f`).
func powerMain(verb string, stderr io.Writer) int {
	if _, err := ask(verb, ""); err != nil {
		fmt.Fprintf(stderr, "%s: %v; forcing it\n", verb, err)
		syscall.Sync()
		if err := syscall.Reboot(rebootCmd[verb]); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", verb, err)
			return exitFailure
		}
	}
	return exitOK
}

// shutdown is PID 1's side: stop every unit (last started first), end every
// other process, sync, and call reboot(2). It runs once.
func (s *supervisor) shutdown(verb string) {
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		return
	}
	s.shuttingDown = true
	names := slices.Clone(s.order)
	s.mu.Unlock()
	s.g.stopping.Store(true)
	s.g.logf("%s: stopping %d units", verb, len(names))
	slices.Reverse(names)
	for _, n := range names {
		s.stop(n)
	}
	syscall.Kill(-1, syscall.SIGTERM) // every process but PID 1
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(-1, syscall.SIGKILL)
	syscall.Sync()
	s.g.logf("%s: units stopped, filesystems synced", verb)
	fmt.Fprintln(os.Stdout, "ultracloud-guest: reached target "+verb)
	if err := syscall.Reboot(rebootCmd[verb]); err != nil {
		s.g.logf("%s: reboot(2): %v", verb, err)
	}
}
