// Package testenv is the test harness shared by the module's packages:
// a private temporary root per test binary that is removed when the binary
// ends, also on SIGINT or SIGTERM (QEMU children die with the binary
// through Pdeathsig).
package testenv

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	reap(root)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "testenv: %v: removing %s and exiting\n", s, root)
		removeRoot(root)
		os.Exit(1)
	}()
	return root, func() { signal.Stop(sig); removeRoot(root) }
}

// reaperScript waits for its stdin to end (the test binary gone: exited,
// killed, panicked), then removes the root, trying again while the
// binary's QEMU children and supervisors wind down.
const reaperScript = `read _ ; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do rm -rf "$1"; [ -e "$1" ] || exit 0; sleep 0.5; done; echo "testenv: $1 could not be removed" >&2`

// reap starts a small process (its own process group: a Ctrl-C to the
// binary's group does not reach it) that removes root once this process
// has ended in any way, SIGKILL included: it reads a pipe whose only
// write end this process holds (close-on-exec, so no child keeps it).
// A signal handler alone left roots behind: goroutines of a test went on
// writing under the root while it was being removed (seen after SIGTERM:
// a cluster's node dirs came back).
func reap(root string) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: reaper:", err)
		return
	}
	r := os.NewFile(uintptr(p[0]), "reaper-stdin")
	cmd := exec.Command("/bin/sh", "-c", reaperScript, "testenv-reaper", root)
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: reaper:", err)
		syscall.Close(p[1])
	}
	r.Close()
	// p[1] stays open, unreferenced by any *os.File (no finalizer closes
	// it), until the process ends.
}

// removeRoot removes root, trying again for a few seconds: a cluster
// supervisor a test started (its own process) may still write under it
// until it sees its state dir gone, and then kills its machines.
func removeRoot(root string) {
	for range 10 {
		os.RemoveAll(root)
		if _, err := os.Stat(root); os.IsNotExist(err) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "testenv: %s could not be removed\n", root)
}

// Main runs the tests of m inside Guard and exits. When the binary's
// -test.timeout is about to end it (Go then panics and exits without
// running any cleanup), Main removes the root shortly before (TimeoutMargin,
// at most a quarter of the timeout), so a timed-out run leaves no
// temporary files behind either; QEMU children die with the binary
// through Pdeathsig.
func Main(m *testing.M) {
	root, done := Guard()
	flag.Parse()
	var timer *time.Timer
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			margin := min(TimeoutMargin, d/4)
			timer = time.AfterFunc(d-margin, func() {
				fmt.Fprintf(os.Stderr, "testenv: -test.timeout %v ends this binary in %v: removing %s first\n", d, margin, root)
				removeRoot(root)
			})
		}
	}
	code := m.Run()
	if timer != nil {
		timer.Stop()
	}
	done()
	os.Exit(code)
}

// TimeoutMargin is how long before a test binary's -test.timeout Main
// removes the binary's temporary root.
const TimeoutMargin = 10 * time.Second

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

// ReachableWithin bounds how long a pair that should reach its peer may
// take to do so: a link brought back up needs the guest to see the
// carrier and resolve its neighbour again, which under TCG takes seconds.
const ReachableWithin = 30 * time.Second

// Reachable probes every pair (from, to) of want in parallel and fails the
// test, naming each pair whose reachability is not what want says (or
// whose probe failed), with stage in front. ping reports whether from
// reaches to. A pair that should be reachable is probed again until it is
// or ReachableWithin has passed; a pair that should not be is probed once
// and must fail.
func Reachable(t testing.TB, stage string, want map[[2]string]bool, ping func(from, to string) (bool, error)) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for pair, ok := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(ReachableWithin)
			tries := 0
			for {
				tries++
				got, err := ping(pair[0], pair[1])
				if err == nil && got == ok {
					return
				}
				if err == nil && ok && time.Now().Before(deadline) {
					time.Sleep(time.Second)
					continue
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					bad = append(bad, fmt.Sprintf("%s→%s: %v", pair[0], pair[1], err))
				default:
					bad = append(bad, fmt.Sprintf("%s→%s reachable=%v, want %v (%d probes)", pair[0], pair[1], got, ok, tries))
				}
				return
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("%s: %s", stage, strings.Join(bad, "; "))
	}
}

// EnvArtifacts is where tests keep files for people to look at after a
// run (screenshots); default: ultracloud-work/test-artifacts in the
// module's root.
const EnvArtifacts = "ULTRACLOUD_TEST_ARTIFACTS"

// ArtifactDir returns (creating it) the directory for t's kept files:
// $ULTRACLOUD_TEST_ARTIFACTS/<test name>, which outlives the test.
func ArtifactDir(t testing.TB) string {
	base := os.Getenv(EnvArtifacts)
	if base == "" {
		root := "."
		for d, _ := os.Getwd(); d != "/" && d != ""; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				root = d
				break
			}
		}
		base = filepath.Join(root, "ultracloud-work", "test-artifacts")
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
