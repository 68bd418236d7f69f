package lanes

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/photoncloud/testkit/ultracloud"
)

// Every node of every canonical topology starts through the scaffold as
// its topology says: direct-kernel nodes boot the fixture to a shell with
// their hostname, vCPUs, memory, disks and NICs; UEFI nodes reach running
// firmware. The 6-node fresh-cluster is the one cmd/ultracloud's
// TestClusterLifecycle boots and checks the same way (a second boot of it
// here cost the CI run minutes on its 2 cores).
func TestCanonicalTopologiesStart(t *testing.T) {
	cfg := runConfig(t)
	for _, topo := range ultracloud.Topologies() {
		if topo.Name == ultracloud.TopologyFreshCluster {
			continue
		}
		t.Run(topo.Name, func(t *testing.T) {
			c := cfg
			c.WorkDir = t.TempDir()
			r, err := Execute(context.Background(), c, Spec{Name: "start-" + topo.Name, Topology: topo.Name}, func(ctx context.Context, r *Run) error {
				g, ctx := errgroup.WithContext(ctx)
				for _, n := range r.Topology().Nodes {
					g.Go(func() error {
						return r.Step(ctx, n.Name, "start", func(ctx context.Context) error { return checkNode(ctx, r, n) })
					})
				}
				return g.Wait()
			})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Passed() {
				t.Fatalf("%s: %s", topo.Name, r.Reason)
			}
			t.Logf("%s: %d nodes started in %v", topo.Name, len(topo.Nodes), r.Finished.Sub(r.Started).Round(time.Second))
		})
	}
}

func checkNode(ctx context.Context, r *Run, n ultracloud.Node) error {
	m, err := r.Boot(ctx, n.Name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.Scaled(2*time.Minute))
	defer cancel()
	if n.Firmware != ultracloud.FirmwareDirect {
		st, err := m.QMP().Status(ctx)
		if err == nil && !st.Running {
			err = fmt.Errorf("firmware not running: %+v", st)
		}
		return err
	}
	out, err := m.Shell().Succeed(ctx, "hostname; nproc; grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2; ls /sys/block | grep -c '^vd'; ls /sys/class/net | grep -vc '^lo$'")
	if err != nil {
		return err
	}
	f := strings.Fields(out)
	if len(f) != 5 {
		return fmt.Errorf("unexpected answer %q", out)
	}
	memKiB, _ := strconv.Atoi(f[2])
	want := []string{n.Name, strconv.Itoa(n.VCPUs), "", strconv.Itoa(len(n.Disks)), strconv.Itoa(len(n.NICs))}
	if f[0] != want[0] || f[1] != want[1] || f[3] != want[3] || f[4] != want[4] || memKiB < n.MemoryMiB*1024*8/10 || memKiB > n.MemoryMiB*1024 {
		return fmt.Errorf("guest says hostname %s, %s vCPUs, %d KiB, %s disks, %s NICs; topology says %s, %d vCPUs, %d MiB, %d disks, %d NICs",
			f[0], f[1], memKiB, f[3], f[4], n.Name, n.VCPUs, n.MemoryMiB, len(n.Disks), len(n.NICs))
	}
	return nil
}
