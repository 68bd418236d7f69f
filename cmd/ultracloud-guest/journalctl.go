package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// journalctlMain is the subset of journalctl that NixOS tests use: -u UNIT
// (repeatable), -n N / --lines=N, and flags that change nothing here
// (--no-pager, -b, -o cat, -q, -e). It prints the units' logs (each fixture
// component logs to /var/log/NAME.log); without -u, every unit's log.
func journalctlMain(args []string, stdout, stderr io.Writer) int {
	var units []string
	lines := -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "-u" || a == "--unit":
			units = append(units, next())
		case strings.HasPrefix(a, "--unit="):
			units = append(units, strings.TrimPrefix(a, "--unit="))
		case strings.HasPrefix(a, "-u") && len(a) > 2:
			units = append(units, a[2:])
		case a == "-n" || a == "--lines":
			n, err := strconv.Atoi(next())
			if err != nil {
				fmt.Fprintln(stderr, "journalctl: -n needs a number")
				return exitFailure
			}
			lines = n
		case strings.HasPrefix(a, "--lines="):
			n, err := strconv.Atoi(strings.TrimPrefix(a, "--lines="))
			if err != nil {
				fmt.Fprintln(stderr, "journalctl: --lines needs a number")
				return exitFailure
			}
			lines = n
		case a == "-o" || a == "--output":
			next()
		case strings.HasPrefix(a, "-"):
			// --no-pager, -b, -q, -e, --since…: no effect on the fixture.
		}
	}
	if len(units) == 0 {
		logs, _ := filepath.Glob("/var/log/*.log")
		for _, l := range logs {
			units = append(units, strings.TrimSuffix(filepath.Base(l), ".log"))
		}
	}
	var out []string
	for _, u := range units {
		f, err := os.Open(filepath.Join("/var/log", unitName(u)+".log"))
		if err != nil {
			continue // systemd prints nothing for a unit without entries
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		f.Close()
	}
	if lines >= 0 && len(out) > lines {
		out = out[len(out)-lines:]
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, "-- No entries --")
		return exitOK
	}
	for _, l := range out {
		fmt.Fprintln(stdout, l)
	}
	return exitOK
}
