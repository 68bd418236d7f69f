package bootstrap_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// A phone-home server on loopback, a machine enrolling by MAC and reporting
// its first phase, and the harness waiting on it.
func ExamplePhoneHomeServer() {
	state, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(state)
	srv, err := bootstrap.NewPhoneHomeServer(bootstrap.ServerConfig{
		StateDir: state,
		Nodes:    []bootstrap.NodeSpec{{Name: "node01", Role: "control-plane", MACs: []string{"52:54:00:12:34:56"}, SystemID: "sys-1"}},
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)

	c := bootstrap.NewClient("http://" + ln.Addr().String())
	e, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:12:34:56"}})
	if err != nil {
		panic(err)
	}
	c.ReportPhase(ctx, e.Node, bootstrap.PhasePlanFetched, "")
	ev, _ := srv.WaitPhase(ctx, "node01", bootstrap.PhasePlanFetched)
	fmt.Println(e.Node, e.Role, e.SystemID, ev.Phase)
	// Output: node01 control-plane sys-1 plan-fetched
}

// Parse a disko plan and see where its partitions land on a 20 GiB disk.
func ExampleDisk_Layout() {
	plan, err := bootstrap.ParsePlan([]byte(`{"disk":{"main":{"type":"disk","device":"/dev/vda","content":{"type":"gpt","partitions":{
	  "ESP":{"size":"512M","type":"EF00","content":{"type":"filesystem","format":"vfat","mountpoint":"/boot"}},
	  "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}}}}}}`))
	if err != nil {
		panic(err)
	}
	ext, _ := plan.Disks[0].Layout(20 << 30)
	for _, e := range ext {
		fmt.Println(e.Index, e.Label, e.FirstLBA, e.LastLBA)
	}
	// Output:
	// 1 disk-main-ESP 2048 1050623
	// 2 disk-main-root 1050624 41940991
}
