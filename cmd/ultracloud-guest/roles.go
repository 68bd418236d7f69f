package main

import (
	"context"
	"encoding/json"
	"errors"
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
// harness can read it in-process. Then the agent follows the deployer's
// lifecycle (drain, decommission, re-enrolment), mounting the root only
// while it changes the credentials there.
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
	agent := &bootstrap.Agent{RootDir: "/sysroot", Node: g.arg("ultracloud.node"), Logger: g.slogger(), BeforeActive: unmount,
		Identity: identity(), Lifecycle: g.lifecycleHooks(dev)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err = agent.FirstBoot(ctx)
	cancel()
	if uerr := unmount(); uerr != nil {
		g.logf("unmount /sysroot: %v", uerr)
	}
	if err != nil {
		g.marker("agent-failed", "reason", err.Error())
		return
	}
	g.marker(phaseActive)
	if err := agent.Serve(context.Background()); err != nil {
		g.marker("agent-failed", "reason", err.Error())
	}
}

// lifecycleFile is where the node keeps its own view of its lifecycle.
const lifecycleFile = "/run/ultracloud/lifecycle.json"

// lifecycleHooks are the node's side of drain, decommission and
// re-enrolment: stop and start its components, wipe and keep its
// credentials on the root (dev, mounted only meanwhile), and record each
// state in lifecycleFile.
func (g *guest) lifecycleHooks(dev string) bootstrap.LifecycleHooks {
	onRoot := func(f func(root string) error) error {
		if err := syscall.Mount(dev, "/sysroot", "ext4", 0, ""); err != nil {
			mounts, _ := os.ReadFile("/proc/mounts")
			return fmt.Errorf("mount %s: %w (mounted now: %s)", dev, err, strings.ReplaceAll(strings.TrimSpace(string(mounts)), "\n", "; "))
		}
		err := f("/sysroot")
		syscall.Sync()
		if uerr := syscall.Unmount("/sysroot", 0); err == nil {
			err = uerr
		}
		return err
	}
	each := func(f func(string) error) error {
		var errs []error
		for _, c := range g.list("ultracloud.components") {
			if err := f(c); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c, err))
			}
		}
		return errors.Join(errs...)
	}
	server := g.arg("ultracloud.phone-home") // the deployer's URL, as the root had it
	return bootstrap.LifecycleHooks{
		Drain:    func(context.Context) error { return each(g.sup.stop) },
		Activate: func(context.Context) error { return each(g.sup.start) },
		Decommission: func(context.Context) error {
			return onRoot(func(root string) error {
				if b, err := os.ReadFile(filepath.Join(root, bootstrap.ServerFile)); err == nil {
					server = strings.TrimSpace(string(b))
				}
				for _, f := range []string{bootstrap.TokenFile, bootstrap.ServerFile} {
					if err := os.Remove(filepath.Join(root, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
				return nil
			})
		},
		Enrolled: func(_ context.Context, e *bootstrap.Enrollment) error {
			return onRoot(func(root string) error {
				for f, data := range map[string]string{bootstrap.TokenFile: e.Token, bootstrap.ServerFile: server} {
					if err := os.WriteFile(filepath.Join(root, f), []byte(data+"\n"), 0o600); err != nil {
						return err
					}
				}
				return nil
			})
		},
		State: func(st bootstrap.NodeLifecycle) {
			data, _ := json.Marshal(st)
			os.MkdirAll(filepath.Dir(lifecycleFile), 0o755)
			if err := os.WriteFile(lifecycleFile+".tmp", data, 0o644); err == nil {
				os.Rename(lifecycleFile+".tmp", lifecycleFile)
			}
			g.marker("lifecycle", "state", st.State, "enrolments", fmt.Sprint(st.Enrolments))
		},
	}
}
