package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// ifaceSpec is one ultracloud.if=IFACE=CIDR[@GATEWAY].
type ifaceSpec struct {
	iface, cidr, gw string
}

func parseIfaceSpec(s string) (ifaceSpec, error) {
	iface, rest, ok := strings.Cut(s, "=")
	if !ok || iface == "" || rest == "" {
		return ifaceSpec{}, fmt.Errorf("ultracloud.if=%q: want IFACE=CIDR[@GATEWAY], e.g. eth0=10.0.2.15/24@10.0.2.2", s)
	}
	cidr, gw, _ := strings.Cut(rest, "@")
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		return ifaceSpec{}, fmt.Errorf("ultracloud.if=%q: %v", s, err)
	}
	if gw != "" && net.ParseIP(gw) == nil {
		return ifaceSpec{}, fmt.Errorf("ultracloud.if=%q: gateway %q is not an IP", s, gw)
	}
	return ifaceSpec{iface, cidr, gw}, nil
}

// resolveIface maps a name, a MAC or "auto" (the first Ethernet interface
// by name) to an interface name, waiting for the driver to create it.
func resolveIface(spec string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			if i.Name == spec || strings.EqualFold(i.HardwareAddr.String(), spec) {
				return i.Name, nil
			}
		}
		if spec == "auto" {
			var names []string
			for _, i := range ifs {
				if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) == 6 {
					names = append(names, i.Name)
				}
			}
			if len(names) > 0 {
				slices.Sort(names)
				return names[0], nil
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, i := range ifs {
				names = append(names, i.Name+"("+i.HardwareAddr.String()+")")
			}
			return "", fmt.Errorf("no interface %q after %s (have %s)", spec, wait, strings.Join(names, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// network brings up lo and every ultracloud.if= interface.
func (g *guest) network() error {
	if _, err := g.procs.run("/bin/ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	var up []string
	for _, s := range g.cmdline["ultracloud.if"] {
		spec, err := parseIfaceSpec(s)
		if err != nil {
			return err
		}
		name, err := resolveIface(spec.iface, 10*time.Second)
		if err != nil {
			return err
		}
		cmds := [][]string{
			{"/bin/ip", "addr", "add", spec.cidr, "dev", name},
			{"/bin/ip", "link", "set", name, "up"},
		}
		if spec.gw != "" {
			cmds = append(cmds, []string{"/bin/ip", "route", "add", "default", "via", spec.gw, "dev", name})
		}
		for _, c := range cmds {
			if _, err := g.procs.run(c...); err != nil {
				return err
			}
		}
		up = append(up, name+"="+spec.cidr)
	}
	host, _ := os.Hostname()
	if h := g.arg("ultracloud.hostname"); h != "" {
		os.WriteFile("/proc/sys/kernel/hostname", []byte(h), 0o644)
		host = h
	}
	writeHosts(host)
	g.marker(ultracloud.PhaseNetworkUp, "ifaces", strings.Join(up, ","), "hostname", host)
	return nil
}

// writeHosts writes /etc/hosts as NixOS has it: localhost on both loopback
// addresses, and the machine's own name.
func writeHosts(host string) {
	hosts := "127.0.0.1 localhost\n::1 localhost\n"
	if host != "" {
		hosts += "127.0.0.2 " + host + "\n"
	}
	os.WriteFile("/etc/hosts", []byte(hosts), 0o644)
}
