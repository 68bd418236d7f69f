// Package testenv is the test harness shared by the module's packages:
// a private temporary root per test binary that is removed when the binary
// ends, also on SIGINT or SIGTERM (QEMU children die with the binary
// through Pdeathsig).
package testenv

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Guard makes a private temporary root, points TMPDIR (and so t.TempDir and
// os.MkdirTemp) at it, and removes it when the process gets SIGINT or
// SIGTERM, then exits 1. Call done to remove it on a normal exit.
func Guard() (root string, done func()) {
	root, err := os.MkdirTemp("", "uctest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(2)
	}
	os.Setenv("TMPDIR", root)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "testenv: %v: removing %s and exiting\n", s, root)
		os.RemoveAll(root)
		os.Exit(1)
	}()
	return root, func() { signal.Stop(sig); os.RemoveAll(root) }
}

// Main runs the tests of m inside Guard and exits.
func Main(m *testing.M) {
	_, done := Guard()
	code := m.Run()
	done()
	os.Exit(code)
}

// Sparse creates a sparse file of size bytes in a test's temporary
// directory (a blank disk image) and returns its path.
func Sparse(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// ProcessGone reports whether pid is gone: no such process, or a zombie
// (dead, waiting for whoever inherited it to reap it).
func ProcessGone(pid int) bool {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// Reachable probes every pair (from, to) of want in parallel and fails the
// test, naming each pair whose reachability is not what want says (or
// whose probe failed), with stage in front. ping reports whether from
// reaches to.
func Reachable(t testing.TB, stage string, want map[[2]string]bool, ping func(from, to string) (bool, error)) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for pair, ok := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := ping(pair[0], pair[1])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s→%s: %v", pair[0], pair[1], err))
			case got != ok:
				bad = append(bad, fmt.Sprintf("%s→%s reachable=%v, want %v", pair[0], pair[1], got, ok))
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("%s: %s", stage, strings.Join(bad, "; "))
	}
}
