package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// Guest phases of the installer and node roles (console markers).
const (
	phaseInstallStart = "install-start"
	phaseInstalled    = "install-done"
	phaseAgentStart   = "agent-start"
	phaseActive       = "active"
)

func (g *guest) slogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// identity is what this machine reports when it phones home.
func identity() bootstrap.Identity {
	id := bootstrap.Identity{AgentVersion: "ultracloud-guest", Firmware: "bios", EnrolSecret: enrolSecret()}
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		id.Firmware = "uefi"
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) == 6 {
			id.MACs = append(id.MACs, i.HardwareAddr.String())
		}
	}
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	id.Serial = read("/sys/class/dmi/id/product_serial")
	if u := read("/sys/class/dmi/id/product_uuid"); u != "" && strings.Trim(u, "0-") != "" {
		id.MachineID = strings.ReplaceAll(u, "-", "")
	}
	blocks, _ := filepath.Glob("/sys/block/*")
	for _, b := range blocks {
		name := filepath.Base(b)
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "sr") {
			continue
		}
		sectors, _ := strconv.ParseInt(read(b+"/size"), 10, 64)
		id.Disks = append(id.Disks, bootstrap.DiskInfo{Name: name, Bytes: sectors * 512, Serial: read(b + "/serial")})
	}
	return id
}

// installedOptions is the installer's own command line minus what only the
// installer needs: the installed system boots with the same console and
// network settings.
func (g *guest) installedOptions() string {
	raw, _ := os.ReadFile("/proc/cmdline")
	var keep []string
	for _, f := range strings.Fields(string(raw)) {
		k, _, _ := strings.Cut(f, "=")
		switch k {
		case "ultracloud.role", "initrd", "BOOT_IMAGE", "ultracloud.node", "ultracloud.root":
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

// runInstaller is the installer role: phone home, install, reboot.
func (g *guest) runInstaller() {
	url := g.arg("ultracloud.phone-home")
	if url == "" {
		g.fatal("installer: no ultracloud.phone-home=URL on the kernel command line")
	}
	g.marker(phaseInstallStart, "server", url)
	in := &bootstrap.Installer{
		Client:        bootstrap.NewClient(url, bootstrap.WithClientLogger(g.slogger())),
		Identity:      identity(),
		WorkDir:       "/tmp/ultracloud",
		KernelOptions: g.installedOptions(),
		Logger:        g.slogger(),
		Reboot: func(context.Context) error {
			g.marker("rebooting")
			syscall.Sync()
			return syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if _, err := in.Run(ctx); err != nil {
		// The server has the reason; stop here so the harness sees it.
		g.marker("install-failed", "reason", err.Error())
		g.logf("install failed: %v", err)
		return
	}
	g.marker(phaseInstalled)
}

// findPartLabel returns the device of the partition with GPT name label.
func findPartLabel(label string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		ues, _ := filepath.Glob("/sys/class/block/*/uevent")
		for _, ue := range ues {
			data, _ := os.ReadFile(ue)
			for _, line := range strings.Split(string(data), "\n") {
				if line == "PARTNAME="+label {
					return "/dev/" + filepath.Base(filepath.Dir(ue)), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no partition named %q after %s", label, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runNode is the installed system's role: mount the root, run the agent's
// first boot, and leave the root filesystem clean (unmounted) so the
// harness can read it in-process.
func (g *guest) runNode() {
	spec := g.arg("ultracloud.root")
	label, ok := strings.CutPrefix(spec, "PARTLABEL=")
	if !ok {
		g.fatal("node: ultracloud.root=%q; want PARTLABEL=<gpt name>", spec)
	}
	dev, err := findPartLabel(label, 20*time.Second)
	if err != nil {
		g.fatal("node: %v", err)
	}
	if err := os.MkdirAll("/sysroot", 0o755); err != nil {
		g.fatal("node: %v", err)
	}
	if err := syscall.Mount(dev, "/sysroot", "ext4", 0, ""); err != nil {
		g.fatal("node: mount %s: %v", dev, err)
	}
	g.marker(phaseAgentStart, "root", dev)
	mounted := true
	unmount := func() error {
		if !mounted {
			return nil
		}
		syscall.Sync()
		mounted = false
		return syscall.Unmount("/sysroot", 0)
	}
	// "active" is reported only once the root is clean, so the harness can
	// power off and read the markers in-process at once.
	agent := &bootstrap.Agent{RootDir: "/sysroot", Node: g.arg("ultracloud.node"), Logger: g.slogger(), BeforeActive: unmount}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err = agent.FirstBoot(ctx)
	if uerr := unmount(); uerr != nil {
		g.logf("unmount /sysroot: %v", uerr)
	}
	if err != nil {
		g.marker("agent-failed", "reason", err.Error())
		return
	}
	g.marker(phaseActive)
}
