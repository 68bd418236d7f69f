package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// A test binary cut off by its -test.timeout leaves no temporary root:
// the child (this test run again with a 4 s timeout) hangs in a test; Main
// removes the root a second before Go's timeout panic ends it.
func TestTimeoutRemovesRoot(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "" {
		os.Stdout.WriteString("root " + os.Getenv("TMPDIR") + "\n")
		time.Sleep(time.Minute)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestTimeoutRemovesRoot$", "-test.timeout", "4s", "-test.v")
	cmd.Env = append(os.Environ(), "TESTENV_CHILD=1")
	out, _ := cmd.CombinedOutput()
	root := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if r, ok := strings.CutPrefix(sc.Text(), "root "); ok {
			root = r
		}
	}
	if root == "" || !strings.Contains(string(out), "panic: test timed out") {
		t.Fatalf("the child did not hang until its timeout:\n%s", out)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("%s outlived the timeout (%v):\n%s", root, err, out)
	}
	if !strings.Contains(string(out), "removing "+root+" first") {
		t.Errorf("no word of the removal:\n%s", out)
	}
}

// A test binary killed outright (SIGKILL: no handler runs) while a
// goroutine keeps writing under its root leaves no root either: the
// reaper removes it once the binary is gone.
func TestKilledBinaryLeavesNoRoot(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "" {
		root := os.Getenv("TMPDIR")
		os.Stdout.WriteString("root " + root + "\n")
		for i := 0; ; i++ {
			os.MkdirAll(filepath.Join(root, "node", strconv.Itoa(i%7)), 0o755)
			os.WriteFile(filepath.Join(root, "node", strconv.Itoa(i%7), "console.log"), []byte("x"), 0o644)
			time.Sleep(20 * time.Millisecond)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledBinaryLeavesNoRoot$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTENV_CHILD=1")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }() // on every path
	root := ""
	sc := bufio.NewScanner(stdout)
	for root == "" && sc.Scan() {
		if r, ok := strings.CutPrefix(sc.Text(), "root "); ok {
			root = r
		}
	}
	if root == "" {
		t.Fatal("the child printed no root")
	}
	time.Sleep(300 * time.Millisecond) // it writes under root meanwhile
	if _, err := os.Stat(filepath.Join(root, "node")); err != nil {
		t.Fatalf("the child wrote nothing under %s: %v", root, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(root); os.IsNotExist(err) {
			return
		}
	}
	t.Fatalf("%s outlived its killed binary by 15 s", root)
}
