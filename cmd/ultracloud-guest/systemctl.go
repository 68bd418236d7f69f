package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

const supervisorSocket = "/run/ultracloud/systemd.sock"

// systemctl exit codes (LSB, as systemd uses them).
const (
	exitOK           = 0
	exitFailure      = 1
	exitNotRunning   = 3
	exitNoSuchUnit   = 4
	exitNotInstalled = 5
)

func ask(verb, unit string) (response, error) {
	c, err := net.DialTimeout("unix", supervisorSocket, 2*time.Second)
	if err != nil {
		return response{}, fmt.Errorf("cannot reach the fixture supervisor at %s: %w", supervisorSocket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := json.NewEncoder(c).Encode(request{Verb: verb, Unit: unit}); err != nil {
		return response{}, err
	}
	var r response
	err = json.NewDecoder(c).Decode(&r)
	return r, err
}

// systemctlMain implements the subset of systemctl that NixOS tests use:
// is-active, is-failed, show -p PROP [--value], start, stop, restart,
// status, list-units.
func systemctlMain(args []string, stdout, stderr io.Writer) int {
	var verb string
	var units, props []string
	value := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--value":
			value = true
		case a == "-p" || a == "--property":
			if i+1 < len(args) {
				props = append(props, strings.Split(args[i+1], ",")...)
				i++
			}
		case strings.HasPrefix(a, "--property="):
			props = append(props, strings.Split(strings.TrimPrefix(a, "--property="), ",")...)
		case strings.HasPrefix(a, "-p") && len(a) > 2:
			props = append(props, strings.Split(a[2:], ",")...)
		case strings.HasPrefix(a, "-"):
			// --no-pager, --quiet, --user…: accepted, no effect here.
		case verb == "":
			verb = a
		default:
			units = append(units, a)
		}
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "systemctl:", err)
		return exitFailure
	}
	switch verb {
	case "is-active", "is-failed":
		if len(units) == 0 {
			fmt.Fprintln(stderr, "Too few arguments.")
			return exitFailure
		}
		code := exitOK
		for _, u := range units {
			r, err := ask("status", u)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintln(stdout, r.Status.State)
			if verb == "is-active" && r.Status.State != stateActive {
				code = exitNotRunning
			}
			if verb == "is-failed" && r.Status.State != stateFailed {
				code = exitFailure
			}
		}
		return code
	case "show":
		if len(units) == 0 {
			fmt.Fprintln(stderr, "show: name a unit")
			return exitFailure
		}
		for _, u := range units {
			r, err := ask("status", u)
			if err != nil {
				return fail(err)
			}
			all := properties(r.Status)
			keys := props
			if len(keys) == 0 {
				keys = []string{"Id", "Names", "Description", "LoadState", "ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ExecMainStatus", "UnitFileState"}
			}
			for _, k := range keys {
				v, ok := all[k]
				if !ok {
					continue
				}
				if value {
					fmt.Fprintln(stdout, v)
				} else {
					fmt.Fprintf(stdout, "%s=%s\n", k, v)
				}
			}
		}
		return exitOK
	case "start", "stop", "restart":
		for _, u := range units {
			r, err := ask(verb, u)
			if err != nil {
				return fail(err)
			}
			if r.Error != "" {
				fmt.Fprintf(stderr, "Failed to %s %s: %s\n", verb, unitID(u), r.Error)
				return exitNotInstalled
			}
		}
		return exitOK
	case "status":
		code := exitOK
		for _, u := range units {
			r, err := ask("status", u)
			if err != nil {
				return fail(err)
			}
			st := r.Status
			if !st.Known {
				fmt.Fprintf(stderr, "Unit %s could not be found.\n", unitID(u))
				code = exitNoSuchUnit
				continue
			}
			fmt.Fprintf(stdout, "● %s - UltraCloud fixture component %s (test double)\n", unitID(u), st.Name)
			fmt.Fprintf(stdout, "     Active: %s (%s)\n", st.State, st.Sub)
			if st.PID != 0 {
				fmt.Fprintf(stdout, "   Main PID: %d\n", st.PID)
			}
			fmt.Fprintf(stdout, "     Listen: 127.0.0.1:%d (/health)\n   Restarts: %d\n", st.Port, st.Restarts)
			if log, err := os.ReadFile("/var/log/" + st.Name + ".log"); err == nil {
				lines := strings.Split(strings.TrimSpace(string(log)), "\n")
				fmt.Fprintln(stdout)
				for _, l := range lines[max(0, len(lines)-10):] {
					fmt.Fprintln(stdout, l)
				}
			}
			if st.State != stateActive {
				code = exitNotRunning
			}
		}
		return code
	case verbPoweroff, verbReboot, verbHalt:
		return powerMain(verb, stderr)
	case "list-jobs":
		// A start or stop in progress is a job, as in systemd; the NixOS
		// driver's wait_for_unit reads "No jobs running." to fail an
		// inactive unit at once.
		r, err := ask("list", "")
		if err != nil {
			return fail(err)
		}
		var jobs []string
		for i, st := range r.Units {
			kind := ""
			switch st.State {
			case stateActivating:
				kind = "start"
			case stateDeactivating:
				kind = "stop"
			}
			if kind != "" {
				jobs = append(jobs, fmt.Sprintf("%3d %-32s %-5s running", i+1, unitID(st.Name), kind))
			}
		}
		if len(jobs) == 0 {
			fmt.Fprintln(stdout, "No jobs running.")
			return exitOK
		}
		fmt.Fprintf(stdout, "JOB %-32s TYPE  STATE\n", "UNIT")
		for _, j := range jobs {
			fmt.Fprintln(stdout, j)
		}
		fmt.Fprintf(stdout, "\n%d jobs listed.\n", len(jobs))
		return exitOK
	case "list-units":
		r, err := ask("list", "")
		if err != nil {
			return fail(err)
		}
		for _, st := range r.Units {
			fmt.Fprintf(stdout, "%-32s loaded %-12s %s\n", unitID(st.Name), st.State, st.Sub)
		}
		return exitOK
	case "":
		fmt.Fprintln(stderr, "systemctl (UltraCloud fixture): is-active, is-failed, show, start, stop, restart, status, list-units, list-jobs, poweroff, reboot, halt")
		return exitFailure
	}
	fmt.Fprintf(stderr, "Unknown command verb %s.\n", verb)
	return exitFailure
}

func unitID(u string) string { return unitName(u) + ".service" }

func properties(st unitStatus) map[string]string {
	load, desc, fileState := "loaded", "UltraCloud fixture component "+st.Name+" (test double)", "enabled"
	if !st.Known {
		load, desc, fileState = "not-found", unitID(st.Name), ""
	}
	result := "success"
	if st.State == stateFailed {
		result = "exit-code"
	}
	return map[string]string{
		"Id":             unitID(st.Name),
		"Names":          unitID(st.Name),
		"Description":    desc,
		"Result":         result,
		"UnitFileState":  fileState,
		"LoadState":      load,
		"ActiveState":    st.State,
		"SubState":       st.Sub,
		"MainPID":        fmt.Sprint(st.PID),
		"NRestarts":      fmt.Sprint(st.Restarts),
		"ExecMainStatus": fmt.Sprint(st.ExitCode),
	}
}
