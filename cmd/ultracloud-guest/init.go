package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// guest is the running init.
type guest struct {
	cmdline map[string][]string
	role    string
	procs   *procs
	// sup runs the node's components (the workloads a drain stops).
	sup *supervisor
	// stopping is set when a power verb began the shutdown: the backdoor
	// shell is not restarted any more (one greeting per boot).
	stopping atomic.Bool
}

func (g *guest) marker(phase string, kv ...string) {
	fmt.Fprintln(os.Stdout, ultracloud.Marker(phase, g.role, kv...))
}

func (g *guest) logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "ultracloud-guest: "+format+"\n", args...)
}

// fatal prints the reason and powers the machine off, so QEMU exits instead
// of a dead PID 1 spinning the CPU.
func (g *guest) fatal(format string, args ...any) {
	reason := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stdout, ultracloud.Marker(ultracloud.PhaseFatal, g.role, "reason", reason))
	fmt.Fprintln(os.Stdout, "ultracloud-guest: FATAL: "+reason+"; powering off")
	syscall.Sync()
	time.Sleep(100 * time.Millisecond)
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // not reached
}

func (g *guest) arg(key string) string {
	if v := g.cmdline[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func (g *guest) list(key string) []string {
	var out []string
	for _, v := range g.cmdline[key] {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// parseCmdline splits /proc/cmdline into key → values (repeatable keys).
func parseCmdline(s string) map[string][]string {
	out := map[string][]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = append(out[k], v)
	}
	return out
}

func mountAPI() error {
	mounts := []struct {
		src, dst, fstype, data string
		flags                  uintptr
	}{
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755", syscall.MS_NOSUID},
		{"proc", "/proc", "proc", "", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
		{"sysfs", "/sys", "sysfs", "", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
		{"tmpfs", "/run", "tmpfs", "mode=0755", syscall.MS_NOSUID | syscall.MS_NODEV},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777", syscall.MS_NOSUID | syscall.MS_NODEV},
		{"devpts", "/dev/pts", "devpts", "", syscall.MS_NOSUID | syscall.MS_NOEXEC},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && err != syscall.EBUSY {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// console makes /dev/console our stdio (the kernel may have started us
// without it).
func console() {
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd < 3; fd++ {
		syscall.Dup3(int(f.Fd()), fd, 0)
	}
}

func runInit() {
	g := &guest{role: "init"}
	if err := mountAPI(); err != nil {
		console()
		g.fatal("%v", err)
	}
	console()
	os.Setenv("PATH", "/bin:/sbin:/usr/bin")
	os.Setenv("HOME", "/root")
	g.procs = newProcs()
	// An init must not die from a signal; log and ignore the ones the Go
	// runtime would otherwise exit on.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range sigs {
			g.logf("init ignores signal %v", s)
		}
	}()
	raw, _ := os.ReadFile("/proc/cmdline")
	g.cmdline = parseCmdline(string(raw))
	g.role = g.arg("ultracloud.role")
	if g.role == "" {
		g.role = "shell"
	}
	g.marker(ultracloud.PhaseInit, "pid", "1")
	if _, err := g.procs.run("/bin/busybox", "--install", "-s", "/bin"); err != nil {
		g.logf("busybox --install: %v", err)
	}

	if err := g.users(); err != nil {
		g.logf("users: %v", err)
	}

	n, failed := g.loadModules("/etc/ultracloud/modules.order")
	g.marker(ultracloud.PhaseModulesLoaded, "count", fmt.Sprint(n), "failed", fmt.Sprint(failed))

	if err := g.network(); err != nil {
		g.fatal("network: %v", err)
	}

	if err := g.persist(); err != nil {
		g.fatal("persist: %v", err)
	}

	sup := newSupervisor(g)
	if err := sup.serve("/run/ultracloud/systemd.sock"); err != nil {
		g.fatal("supervisor: %v", err)
	}
	fail := map[string]bool{}
	for _, c := range g.list("ultracloud.fail") {
		fail[c] = true
	}
	for _, c := range g.list("ultracloud.components") {
		sup.add(c, fail[c])
	}
	sup.startAll()
	g.sup = sup

	go g.backdoor("/dev/hvc0")
	go g.sshd()

	switch g.role {
	case "shell":
	case "installer":
		go g.runInstaller()
	case "node":
		go g.runNode()
	case "nix-agent":
		go g.runNixAgent()
	default:
		g.fatal("unknown role %q (ultracloud.role=shell|installer|node|nix-agent)", g.role)
	}
	g.marker(ultracloud.PhaseReady)
	select {}
}
