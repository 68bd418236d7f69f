package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ncMain gives `nc` the -z (port scan) mode of the netcat NixOS ships,
// which busybox's nc lacks: `nc -z [-w SECS] [-v] HOST PORT` exits 0 when
// something accepts a TCP connection there (IPv6 addresses included).
// Everything else is busybox's nc.
func ncMain(args []string, stderr io.Writer) int {
	zero, verbose := false, false
	wait := 5 * time.Second
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-w" && i+1 < len(args):
			if n, err := strconv.Atoi(args[i+1]); err == nil {
				wait = time.Duration(n) * time.Second
			}
			i++
		case strings.HasPrefix(a, "-") && len(a) > 1 && strings.Trim(a[1:], "zvnN46") == "":
			zero = zero || strings.Contains(a, "z")
			verbose = verbose || strings.Contains(a, "v")
		default:
			rest = append(rest, a)
		}
	}
	if !zero {
		return execBusybox("nc", args)
	}
	if len(rest) != 2 {
		fmt.Fprintln(stderr, "usage: nc -z [-w SECS] [-v] HOST PORT")
		return exitFailure
	}
	addr := net.JoinHostPort(strings.Trim(rest[0], "[]"), rest[1])
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		if verbose {
			fmt.Fprintf(stderr, "nc: connect to %s failed: %v\n", addr, err)
		}
		return exitFailure
	}
	c.Close()
	if verbose {
		fmt.Fprintf(stderr, "Connection to %s succeeded!\n", addr)
	}
	return exitOK
}

func execBusybox(applet string, args []string) int {
	err := syscall.Exec("/bin/busybox", append([]string{applet}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "%s: %v\n", applet, err)
	return 126
}

// timeoutMain is coreutils' timeout, which NixOS ships and the NixOS test
// driver relies on (busybox's differs: exit 143, no -k): `timeout [-s SIG]
// [-k DURATION] [--preserve-status] [--foreground] DURATION CMD [ARG…]`.
// On timeout it signals CMD's process group and exits 124; 125 when timeout
// itself fails, 126 when CMD cannot run, 127 when it is not found; else
// CMD's status (128+N when killed by signal N).
func timeoutMain(args []string, stderr io.Writer) int {
	sig, kill, preserve, foreground := syscall.SIGTERM, time.Duration(0), false, false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		val := func() string {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
				return v
			}
			if len(a) > 2 && !strings.HasPrefix(a, "--") {
				return a[2:]
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--preserve-status":
			preserve = true
		case a == "--foreground":
			foreground = true
		case strings.HasPrefix(a, "-s") || strings.HasPrefix(a, "--signal"):
			s, ok := signalByName(val())
			if !ok {
				fmt.Fprintln(stderr, "timeout: invalid signal")
				return 125
			}
			sig = s
		case strings.HasPrefix(a, "-k") || strings.HasPrefix(a, "--kill-after"):
			d, err := parseDuration(val())
			if err != nil {
				fmt.Fprintln(stderr, "timeout:", err)
				return 125
			}
			kill = d
		case a == "--":
			i++
			goto done
		case strings.HasPrefix(a, "-") && len(a) > 1 && (a[1] < '0' || a[1] > '9'):
			fmt.Fprintf(stderr, "timeout: unknown option %s\n", a)
			return 125
		default:
			goto done
		}
	}
done:
	if len(args)-i < 2 {
		fmt.Fprintln(stderr, "usage: timeout [-s SIG] [-k DURATION] [--preserve-status] [--foreground] DURATION COMMAND [ARG]...")
		return 125
	}
	d, err := parseDuration(args[i])
	if err != nil {
		fmt.Fprintln(stderr, "timeout:", err)
		return 125
	}
	cmd := exec.Command(args[i+1], args[i+2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if !foreground {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "timeout: failed to run command %q: %v\n", args[i+1], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	send := func(s syscall.Signal) {
		if foreground {
			cmd.Process.Signal(s)
		} else {
			syscall.Kill(-cmd.Process.Pid, s)
		}
	}
	// Pass on the signals timeout itself gets, as coreutils does.
	fwd := make(chan os.Signal, 4)
	signal.Notify(fwd, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if d > 0 {
		timer = time.After(d)
	}
	timedOut := false
	var killTimer <-chan time.Time
	for {
		select {
		case s := <-fwd:
			send(s.(syscall.Signal))
		case <-timer:
			timedOut = true
			send(sig)
			if sig != syscall.SIGKILL && sig != syscall.SIGCONT {
				send(syscall.SIGCONT)
			}
			if kill > 0 {
				killTimer = time.After(kill)
			}
		case <-killTimer:
			send(syscall.SIGKILL)
			return 128 + int(syscall.SIGKILL)
		case err := <-done:
			status := exitStatus(cmd, err)
			if timedOut && !preserve {
				return 124
			}
			return status
		}
	}
}

func exitStatus(cmd *exec.Cmd, err error) int {
	if err == nil {
		return 0
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	return 125
}

// parseDuration reads coreutils durations: a number with s, m, h or d.
func parseDuration(s string) (time.Duration, error) {
	unit := time.Second
	switch {
	case strings.HasSuffix(s, "s"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		s, unit = s[:len(s)-1], time.Minute
	case strings.HasSuffix(s, "h"):
		s, unit = s[:len(s)-1], time.Hour
	case strings.HasSuffix(s, "d"):
		s, unit = s[:len(s)-1], 24*time.Hour
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid time interval %q", s)
	}
	return time.Duration(f * float64(unit)), nil
}

func signalByName(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n), n > 0 && n < 65
	}
	names := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT,
		"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP}
	sig, ok := names[strings.TrimPrefix(strings.ToUpper(s), "SIG")]
	return sig, ok
}
