package deployer_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/deployer"
)

// A phone-home server on loopback, a machine enrolling by MAC and reporting
// its first phase, and the harness waiting on it.
func ExamplePhoneHomeServer() {
	state, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(state)
	srv, err := deployer.NewPhoneHomeServer(deployer.ServerConfig{
		StateDir: state,
		Nodes:    []deployer.NodeSpec{{Name: "node01", Role: "control-plane", MACs: []string{"52:54:00:12:34:56"}, SystemID: "sys-1"}},
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
