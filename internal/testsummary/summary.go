// Package testsummary reads `go test -json` and writes what a person
// reading only the end of a CI log needs: the plain `go test` lines as
// they come (package results, and the output of failed tests), then a
// summary at the end: every package's result and time, the slowest tests,
// the tests still running when a package was cut off (a timeout), and the
// last lines of every failed test's output.
package testsummary

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Event is one line of `go test -json` (cmd/test2json's TestEvent).
type Event struct {
	Time    time.Time `json:"Time"`
	Action  string    `json:"Action"`
	Package string    `json:"Package"`
	Test    string    `json:"Test"`
	Elapsed float64   `json:"Elapsed"`
	Output  string    `json:"Output"`
}

// Options tune Summarize; zero values take the defaults.
type Options struct {
	// Slowest is how many of the slowest tests the summary lists
	// (default 25).
	Slowest int
	// TailLines is how many of a failed test's last output lines the
	// summary repeats (default 30).
	TailLines int
}

// Result counts what Summarize saw.
type Result struct {
	Packages, FailedPackages int
	Tests, Failed, Skipped   int
}

type test struct {
	pkg, name string
	started   time.Time
	elapsed   float64
	action    string // "" while running
	output    []string
}

type pkgState struct {
	name    string
	action  string
	elapsed float64
	output  []string // package-level output (no test): build errors, panics
}

// Summarize copies the plain go-test view of the events in r to w and
// then writes the summary. Lines that are not JSON events (a build
// failure printed by go itself) are copied as they are.
func Summarize(r io.Reader, w io.Writer, o Options) (Result, error) {
	o.Slowest = cmp.Or(o.Slowest, 25)
	o.TailLines = cmp.Or(o.TailLines, 30)
	tests := map[[2]string]*test{}
	var order []*test
	pkgs := map[string]*pkgState{}
	var pkgOrder []*pkgState
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e Event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		p := pkgs[e.Package]
		if p == nil {
			p = &pkgState{name: e.Package}
			pkgs[e.Package] = p
			pkgOrder = append(pkgOrder, p)
		}
		if e.Test == "" {
			switch e.Action {
			case "output":
				p.output = append(p.output, e.Output)
				// go test's own per-package lines: "ok  pkg 1.2s", "FAIL pkg", "?  pkg [no test files]".
				if strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "?") || strings.HasPrefix(e.Output, "panic:") {
					io.WriteString(w, e.Output)
				}
			case "pass", "fail", "skip":
				p.action, p.elapsed = e.Action, e.Elapsed
			}
			continue
		}
		k := [2]string{e.Package, e.Test}
		tt := tests[k]
		if tt == nil {
			tt = &test{pkg: e.Package, name: e.Test, started: e.Time}
			tests[k] = tt
			order = append(order, tt)
		}
		switch e.Action {
		case "output":
			tt.output = append(tt.output, e.Output)
		case "pass", "fail", "skip":
			tt.action, tt.elapsed = e.Action, e.Elapsed
			if e.Action == "fail" && !strings.Contains(tt.name, "/") {
				// As plain go test prints it: the failed test's output.
				for _, l := range tt.output {
					io.WriteString(w, l)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("reading go test -json: %w", err)
	}

	var res Result
	fmt.Fprintf(w, "\n==== test summary ====\n")
	for _, p := range pkgOrder {
		if p.action == "" && len(p.output) == 0 {
			continue
		}
		if p.action == "skip" && strings.Contains(strings.Join(p.output, ""), "[no test files]") {
			continue
		}
		res.Packages++
		st := cmp.Or(p.action, "fail (no result: cut off or did not build)")
		if p.action != "pass" && p.action != "skip" {
			res.FailedPackages++
		}
		fmt.Fprintf(w, "%-8s %8.1fs  %s\n", st, p.elapsed, p.name)
	}
	var running, failed []*test
	for _, t := range order {
		res.Tests++
		switch t.action {
		case "fail":
			res.Failed++
			failed = append(failed, t)
		case "skip":
			res.Skipped++
		case "":
			running = append(running, t)
		}
	}
	slow := slices.Clone(order)
	slices.SortStableFunc(slow, func(a, b *test) int { return cmp.Compare(b.elapsed, a.elapsed) })
	fmt.Fprintf(w, "\nslowest tests:\n")
	for _, t := range slow[:min(len(slow), o.Slowest)] {
		if t.action == "" {
			continue
		}
		fmt.Fprintf(w, "  %-4s %8.1fs  %s %s\n", t.action, t.elapsed, short(t.pkg), t.name)
	}
	if len(running) > 0 {
		fmt.Fprintf(w, "\nstill running when their package ended (cut off by a timeout or a crash):\n")
		for _, t := range running {
			fmt.Fprintf(w, "  started %s  %s %s\n", t.started.Format("15:04:05"), short(t.pkg), t.name)
		}
	}
	// A failed test whose subtests failed gets a few lines and their
	// names; the failed leaves come last, nearest the log's end, with
	// their full tails: that is where the causes are.
	var leaves []*test
	for _, t := range failed {
		var kids []string
		for _, u := range failed {
			if u.pkg == t.pkg && strings.HasPrefix(u.name, t.name+"/") {
				kids = append(kids, u.name)
			}
		}
		if len(kids) == 0 {
			leaves = append(leaves, t)
			continue
		}
		fmt.Fprintf(w, "\n--- failed %s %s (%.1fs) with its subtests %s; its last lines:\n%s", short(t.pkg), t.name, t.elapsed, strings.Join(kids, ", "), tail(t.output, min(5, o.TailLines)))
	}
	for _, t := range leaves {
		fmt.Fprintf(w, "\n--- last lines of failed %s %s (%.1fs):\n%s", short(t.pkg), t.name, t.elapsed, tail(t.output, o.TailLines))
	}
	fmt.Fprintf(w, "\n%d packages (%d failed), %d tests: %d failed, %d skipped\n", res.Packages, res.FailedPackages, res.Tests, res.Failed, res.Skipped)
	return res, nil
}

// tail is the last n lines of output.
func tail(output []string, n int) string {
	lines := strings.SplitAfter(strings.Join(output, ""), "\n")
	return strings.Join(lines[max(0, len(lines)-n-1):], "")
}

func short(pkg string) string {
	if i := strings.Index(pkg, "/testkit/"); i >= 0 {
		return pkg[i+len("/testkit/"):]
	}
	return pkg
}
