package lanes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"slices"

	"github.com/photoncloud/testkit/ultracloud/deployer"
)

// GuestServerAddr is where guests reach the phone-home server (QEMU
// guestfwd to the host's loopback listener).
const GuestServerAddr = "10.0.2.100:80"

// PhoneHome starts the run's phone-home server on loopback with a fresh
// state of this run (events carry its run id) and returns it with its
// address; it stops when the run ends. Guests reach it at GuestServerAddr
// through WithGuestFwd(vm.GuestFwd{GuestAddr: GuestServerAddr, HostAddr: addr}).
//
// Enrolment is secured: every node without an EnrolSecret gets a random
// one-time secret, the server requires it, and Boot hands it to the node's
// machine as an SMBIOS OEM string (ultracloud.enrol-secret=…). Knowing a
// MAC is not enough to take a node.
func (r *Run) PhoneHome(ctx context.Context, nodes []deployer.NodeSpec) (*deployer.PhoneHomeServer, string, error) {
	nodes = slices.Clone(nodes)
	for i := range nodes {
		if nodes[i].EnrolSecret == "" {
			var b [24]byte
			rand.Read(b[:])
			nodes[i].EnrolSecret = hex.EncodeToString(b[:])
		}
		r.mu.Lock()
		r.secrets[nodes[i].Name] = nodes[i].EnrolSecret
		r.mu.Unlock()
	}
	state, err := r.Dir("state", "phone-home")
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv, err := deployer.NewPhoneHomeServer(deployer.ServerConfig{StateDir: state, RunID: r.ID(), RequireEnrolSecret: true,
		Nodes: nodes, PublicURL: "http://" + GuestServerAddr, Logger: r.Log()})
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(served) }()
	r.Defer(func() { stop(); <-served; srv.Close() })
	return srv, ln.Addr().String(), nil
}
