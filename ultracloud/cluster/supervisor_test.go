package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// A supervisor in-process: one per state dir, a client sees it running,
// and removing the state dir under it (what a test's temporary dir does on
// SIGINT) ends it with its machines.
func TestSuperviseEndsWhenStateRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	if _, err := cluster.Open(dir); !errors.Is(err, cluster.ErrNoCluster) || !strings.Contains(err.Error(), "ultracloud cluster start") {
		t.Fatalf("no cluster yet: %v", err)
	}
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologySingleNodeQuickstart)
	if err := cluster.Prepare(dir, topo); err != nil {
		t.Fatal(err)
	}
	other, _ := ultracloud.LookupTopology(ultracloud.TopologyHAControlPlane)
	if err := cluster.Prepare(dir, other); !errors.Is(err, cluster.ErrOtherTopology) {
		t.Fatalf("another topology in the same dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cluster.Supervise(ctx, dir, host) }()
	cl, err := cluster.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st cluster.Status
	for st.Supervisor.State != cluster.SupervisorRunning {
		select {
		case err := <-done:
			t.Fatalf("supervisor ended: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if cl.Alive() {
			if st, err = cl.Status(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cluster.Supervise(ctx, dir, host); !errors.Is(err, cluster.ErrRunning) {
		t.Fatalf("a second supervisor: %v", err)
	}
	if err := cluster.Prepare(dir, topo); !errors.Is(err, cluster.ErrRunning) {
		t.Fatalf("prepare under a running supervisor: %v", err)
	}
	pid := st.Nodes[0].PID
	if st.Running() != 1 || pid == 0 {
		t.Fatalf("%+v", st)
	}
	removed := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("supervisor ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor outlived its state dir by 10 s")
	}
	if !testenv.ProcessGone(pid) {
		t.Fatalf("QEMU %d still runs", pid)
	}
	t.Logf("supervisor and QEMU gone %v after the state dir was removed", time.Since(removed).Round(time.Millisecond))
}
