package vm_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

const orphanChildEnv = "ULTRACLOUD_TEST_ORPHAN_CHILD"

// orphanChild runs in a re-executed test binary: it starts a machine,
// prints QEMU's pid and its temp root, and waits to be killed.
func orphanChild() {
	flag.Parse()
	root, _ := testenv.Guard()
	cfg := guest(&fakeTB{}, "orphan", "")
	m, err := vm.Start(context.Background(), cfg)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("PID %d %s\n", m.PID(), root)
	select {}
}

// fakeTB satisfies guest's testing.TB in the child process, which has no
// *testing.T. Named so: it only fails loudly.
type fakeTB struct{ testing.TB }

func (fakeTB) Helper()                   {}
func (fakeTB) Fatal(args ...any)         { fmt.Println("ERR", fmt.Sprint(args...)); os.Exit(1) }
func (fakeTB) Skip(args ...any)          { fmt.Println("ERR skip", fmt.Sprint(args...)); os.Exit(1) }
func (fakeTB) Fatalf(f string, a ...any) { fmt.Println("ERR", fmt.Sprintf(f, a...)); os.Exit(1) }

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}

// A test binary killed mid-test (SIGKILL, or SIGTERM) leaves no QEMU
// behind; on SIGTERM its temp root is removed too.
func TestNoOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), orphanChildEnv+"=1")
			out, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "PID ") {
				t.Fatalf("child said %q %v", line, err)
			}
			f := strings.Fields(line)
			pid, _ := strconv.Atoi(f[1])
			if !alive(pid) {
				t.Fatalf("qemu %d not running", pid)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			deadline := time.Now().Add(5 * time.Second)
			for alive(pid) {
				if time.Now().After(deadline) {
					syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("qemu %d survived its test binary's %v", pid, sig)
				}
				time.Sleep(50 * time.Millisecond)
			}
			_, statErr := os.Stat(f[2])
			if sig == syscall.SIGTERM && statErr == nil {
				t.Errorf("temp root %s survived SIGTERM", f[2])
			}
			os.RemoveAll(f[2]) // SIGKILL cannot clean up; we do it here
		})
	}
}
