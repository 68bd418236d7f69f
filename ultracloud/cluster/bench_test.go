package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// BenchmarkClusterStart boots the 6-node fresh-cluster from Start to every
// node's shell and compares it with the CPU-bound limit measured in the
// same run: 6 × the CPU time one node's QEMU spends from launch to its
// shell, divided by the host's cores. Metrics: wall-s (6 nodes), limit-s,
// ratio (target ≤ 1.2), single-s (one node's wall time); for the
// topology's nodes and for the same machines without components.
//
//	go test ./ultracloud/cluster -run '^$' -bench ClusterStart -benchtime 1x
func BenchmarkClusterStart(b *testing.B) {
	host, err := vm.Preflight(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	fb, err := fixture.NewBuilder()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := fb.Build(ctx); err != nil { // built once, outside the timing
		b.Fatal(err)
	}
	topo, _ := ultracloud.LookupTopology(ultracloud.TopologyFreshCluster)
	bare := topo.Clone()
	for i := range bare.Nodes {
		bare.Nodes[i].Components = nil
	}
	// "topology": the nodes as fresh-cluster has them, each starting its
	// 4–5 component doubles (nodes at their shells keep starting them while
	// others boot: work the shell-based limit does not count). "bare": the
	// same machines without components, the runtime's own cost.
	b.Run("topology", func(b *testing.B) { benchStart(b, ctx, topo, host, fb) })
	b.Run("bare", func(b *testing.B) { benchStart(b, ctx, bare, host, fb) })
}

func benchStart(b *testing.B, ctx context.Context, topo ultracloud.Topology, host ultracloud.HostEnv, fb *fixture.Builder) {
	var wall, limit, single time.Duration
	for range b.N {
		// One node: wall time and its QEMU's CPU time up to the shell.
		sw, cpu := bootToShells(b, ctx, topo, host, fb, "node04")
		// Six nodes at once.
		all, cpu6 := bootToShells(b, ctx, topo, host, fb)
		b.Logf("6 nodes: QEMU CPU %v in %v wall: %.0f%% of %d cores", cpu6.Round(10*time.Millisecond), all.Round(10*time.Millisecond),
			100*cpu6.Seconds()/all.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
		single += sw
		wall += all
		limit += time.Duration(float64(len(topo.Nodes)) * float64(cpu) / float64(runtime.NumCPU()))
	}
	n := float64(b.N)
	b.ReportMetric(wall.Seconds()/n, "wall-s")
	b.ReportMetric(limit.Seconds()/n, "limit-s")
	b.ReportMetric(wall.Seconds()/limit.Seconds(), "ratio")
	b.ReportMetric(single.Seconds()/n, "single-s")
	b.Logf("accelerator %s, %d cores: 6 nodes to their shells in %v; limit 6 × one node's CPU / cores = %v; one node alone %v",
		host.Accelerator, runtime.NumCPU(), (wall / time.Duration(b.N)).Round(10*time.Millisecond),
		(limit / time.Duration(b.N)).Round(10*time.Millisecond), (single / time.Duration(b.N)).Round(10*time.Millisecond))
}

// bootToShells starts the nodes (all when none are named), waits for every
// shell, and returns the wall time and the summed QEMU CPU time.
func bootToShells(b *testing.B, ctx context.Context, topo ultracloud.Topology, host ultracloud.HostEnv, fb *fixture.Builder, nodes ...string) (time.Duration, time.Duration) {
	b.Helper()
	opts := []cluster.Option{cluster.WithFixture(fb), cluster.WithDir(b.TempDir())}
	if len(nodes) > 0 {
		opts = append(opts, cluster.WithNodes(nodes...))
	} else {
		for _, n := range topo.Nodes {
			nodes = append(nodes, n.Name)
		}
	}
	b.StartTimer()
	start := time.Now()
	c, err := cluster.Start(ctx, topo, host, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var cpu time.Duration
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := c.Node(n)
			if err == nil {
				err = m.Shell().Connected(ctx)
			}
			if err != nil {
				b.Error(err)
				return
			}
			t := cpuTime(m.PID())
			mu.Lock()
			cpu += t
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	b.StopTimer()
	return wall, cpu
}

// cpuTime is a process's user + system CPU time from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the command: state is field 3, utime 14, stime 15 (1-based).
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
