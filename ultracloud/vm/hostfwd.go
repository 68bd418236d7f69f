package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrNoHostFwd: the machine has no host forward to that guest port.
var ErrNoHostFwd = errors.New("no host forward")

// HostForward returns the host address ("127.0.0.1:40101") QEMU listens on
// for the HostFwd rule to guestPort: the port it picked when the rule said
// port 0. It asks QEMU (`info usernet`), so it is the live listener.
func (m *Machine) HostForward(ctx context.Context, guestPort int) (string, error) {
	out, err := m.qmp.MonitorCommand(ctx, "info usernet")
	if err != nil {
		return "", fmt.Errorf("%s: info usernet: %w", m.cfg.Name, err)
	}
	fwds := ParseHostForwards(out)
	if a, ok := fwds[guestPort]; ok {
		return a, nil
	}
	return "", fmt.Errorf("%s: %w to guest port %d (forwards: %v); add a HostFwd to a user-mode NIC", m.cfg.Name, ErrNoHostFwd, guestPort, fwds)
}

// ParseHostForwards reads QEMU's `info usernet` output: guest port → host
// address of every TCP[HOST_FORWARD] line. Lines it does not understand are
// skipped.
func ParseHostForwards(out string) map[int]string {
	fwds := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// TCP[HOST_FORWARD]  FD  src-addr src-port  dst-addr dst-port  recvq sendq
		if len(f) < 6 || f[0] != "TCP[HOST_FORWARD]" {
			continue
		}
		src, sport, dport := f[2], f[3], f[5]
		sp, err1 := strconv.Atoi(sport)
		dp, err2 := strconv.Atoi(dport)
		if err1 != nil || err2 != nil || sp <= 0 || sp > 65535 || dp <= 0 || dp > 65535 || net.ParseIP(src) == nil {
			continue
		}
		if src == "0.0.0.0" {
			src = "127.0.0.1"
		}
		fwds[dp] = net.JoinHostPort(src, sport)
	}
	return fwds
}
