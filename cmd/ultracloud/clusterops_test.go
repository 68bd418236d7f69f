package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud/cluster"
)

// envRunMain makes the test binary run the CLI's main: the tests run the
// CLI as a process, and `cluster start` re-executes it as the supervisor.
const envRunMain = "ULTRACLOUD_TEST_RUN_MAIN"

// cli runs the CLI in a process of its own and returns its output and exit
// code.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func status(t *testing.T, state string) (cluster.Status, int) {
	t.Helper()
	out, errOut, code := cli(t, "cluster", "status", "--json", "--state", state)
	var st cluster.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	return st, code
}

func qemuPIDs(st cluster.Status) []int {
	var pids []int
	for _, n := range st.Nodes {
		if n.PID > 0 {
			pids = append(pids, n.PID)
		}
	}
	return pids
}

// The seed's operational verbs on the 6-node fresh-cluster, each a real
// process: start → status → ssh → logs → a file written over SSH survives
// stop + start → kill -9 of the supervisor takes every QEMU with it →
// clean leaves nothing.
func TestClusterLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a 6-node cluster")
	}
	state := filepath.Join(t.TempDir(), "ultracloud-work", "cluster")
	t.Cleanup(func() { cluster.Clean(context.Background(), state) })

	// No cluster yet: every verb says how to make one.
	for _, verb := range []string{"status", "stop"} {
		_, errOut, code := cli(t, "cluster", verb, "--state", state)
		if code == 0 || !strings.Contains(errOut, "no cluster in "+state+"; run `ultracloud cluster start --state "+state+"`") {
			t.Fatalf("%s without a cluster: exit %d: %s", verb, code, errOut)
		}
	}

	// fresh-smoke: clean + start + the lane on the running cluster, which
	// keeps running for the verbs below.
	work := t.TempDir()
	begin := time.Now()
	out, errOut, code := cli(t, "cluster", "fresh-smoke", "--state", state, "--work-dir", work)
	t.Logf("fresh-smoke in %v:\n%s\n%s", time.Since(begin).Round(time.Second), out, errOut)
	if code != 0 || !strings.Contains(out, "all 6 nodes answer SSH") || !strings.Contains(out, "lane fresh-smoke: pass") {
		t.Fatalf("fresh-smoke: exit %d", code)
	}
	checkSmokeReport(t, filepath.Join(work, "report", "report.json"))
	t.Run("demo-vm-webapp", func(t *testing.T) { demoWebapp(t, state) })
	t.Run("bench-storage", func(t *testing.T) { benchStorage(t, state) })
	t.Run("matrix", func(t *testing.T) { matrix(t, state) })
	// Last of the lanes: the broken runs kill, stop and partition on
	// purpose, and a lane after them would test their repair as well.
	t.Run("invariants fail when broken", func(t *testing.T) { brokenInvariants(t, state) })
	st, code := status(t, state)
	if code != 0 || st.Supervisor.State != cluster.SupervisorRunning || st.Running() != 6 || st.Supervisor.Accelerator == "" {
		t.Fatalf("status: exit %d %+v", code, st)
	}
	for _, n := range st.Nodes {
		if n.PID == 0 || n.SSH == "" || n.Addresses["cluster"] == "" || n.Units == nil {
			t.Fatalf("node %s: %+v", n.Name, n)
		}
	}
	pids := qemuPIDs(st)
	machinesAsTopologySays(t, state)

	if out, errOut, code := cli(t, "cluster", "ssh", "node04", "--state", state, "--", "hostname"); code != 0 || out != "node04\n" {
		t.Fatalf("ssh node04 -- hostname: exit %d %q %s", code, out, errOut)
	}
	if _, _, code := cli(t, "cluster", "ssh", "node02", "--state", state, "--", "exit 5"); code != 5 {
		t.Fatalf("the exit status is not passed through: %d", code)
	}
	if _, errOut, code := cli(t, "cluster", "ssh", "node99", "--state", state, "--", "true"); code == 0 || !strings.Contains(errOut, "node01, node02, node03, node04, node05, node06") {
		t.Fatalf("unknown node: exit %d %s", code, errOut)
	}
	if out, _, code := cli(t, "cluster", "logs", "node01", "--state", state, "--lines", "200"); code != 0 || !strings.Contains(out, "phase=ssh-ready role=shell") {
		t.Fatalf("logs node01: exit %d\n%s", code, out)
	}
	if _, errOut, code := cli(t, "cluster", "ssh", "node04", "--state", state, "--", "echo survived > /var/lib/probe && sync"); code != 0 {
		t.Fatalf("write: %d %s", code, errOut)
	}

	if out, errOut, code := cli(t, "cluster", "stop", "--state", state); code != 0 {
		t.Fatalf("stop: %d %s %s", code, out, errOut)
	}
	for _, pid := range pids {
		if !testenv.ProcessGone(pid) {
			t.Fatalf("QEMU %d outlived stop", pid)
		}
	}
	if st, code := status(t, state); code != 0 || st.Supervisor.State != cluster.SupervisorStopped || st.Running() != 0 {
		t.Fatalf("after stop: exit %d %+v", code, st.Supervisor)
	}

	if out, errOut, code := cli(t, "cluster", "start", "--state", state); code != 0 {
		t.Fatalf("start again: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := cli(t, "cluster", "ssh", "node04", "--state", state, "--", "cat /var/lib/probe"); code != 0 || out != "survived\n" {
		t.Fatalf("after stop + start: exit %d %q %s", code, out, errOut)
	}

	// kill -9 of the supervisor: its QEMUs go with it.
	st, _ = status(t, state)
	pids = qemuPIDs(st)
	if len(pids) != 6 {
		t.Fatalf("%d QEMUs after the second start", len(pids))
	}
	if err := syscall.Kill(st.Supervisor.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, pid := range pids {
		for !testenv.ProcessGone(pid) {
			if time.Since(killed) > 2*time.Second {
				t.Fatalf("QEMU %d still runs 2 s after the supervisor was killed", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("every QEMU gone %v after kill -9 of the supervisor", time.Since(killed).Round(time.Millisecond))
	st, code = status(t, state)
	if code == 0 || st.Supervisor.State != cluster.SupervisorGone || !strings.Contains(st.Supervisor.Detail, "clean") {
		t.Fatalf("status after kill -9: exit %d %+v", code, st.Supervisor)
	}

	if out, errOut, code := cli(t, "cluster", "clean", "--state", state); code != 0 {
		t.Fatalf("clean: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state dir left after clean: %v", err)
	}
}

// machinesAsTopologySays asks every node of the running cluster for its
// hostname, vCPUs, memory, disks and NICs and compares them with the
// topology it was started from (lanes' TestCanonicalTopologiesStart does
// this for the other canonical topologies; this package's cluster is the
// fresh-cluster one, booted once for both).
func machinesAsTopologySays(t *testing.T, state string) {
	t.Helper()
	cl, err := cluster.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Topology().Nodes {
		out, errOut, code := cli(t, "cluster", "ssh", n.Name, "--state", state, "--",
			// NICs with a device behind them: the lanes
			// before this added bridges, VXLAN and veth links.
			"hostname; nproc; grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2; ls /sys/block | grep -c '^vd'; ls -d /sys/class/net/*/device | wc -l")
		f := strings.Fields(out)
		if code != 0 || len(f) != 5 {
			t.Fatalf("%s: exit %d, answer %q %s", n.Name, code, out, errOut)
		}
		memKiB, _ := strconv.Atoi(f[2])
		if f[0] != n.Name || f[1] != strconv.Itoa(n.VCPUs) || f[3] != strconv.Itoa(len(n.Disks)) || f[4] != strconv.Itoa(len(n.NICs)) ||
			memKiB < n.MemoryMiB*1024*8/10 || memKiB > n.MemoryMiB*1024 {
			t.Errorf("guest says hostname %s, %s vCPUs, %d KiB, %s disks, %s NICs; topology says %s, %d vCPUs, %d MiB, %d disks, %d NICs",
				f[0], f[1], memKiB, f[3], f[4], n.Name, n.VCPUs, n.MemoryMiB, len(n.Disks), len(n.NICs))
		}
	}
}
