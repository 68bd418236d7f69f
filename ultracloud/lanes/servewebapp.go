package lanes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
)

// ErrNoWebapp: the cluster runs no demo webapp VM to serve.
var ErrNoWebapp = errors.New("no webapp VM")

// ServedWebapp is what ServeVMWebapp forwards.
type ServedWebapp struct {
	// URL is the page on the host.
	URL string
	// Node and IP are the VM's worker and prismnet address.
	Node, IP string
}

// ServeVMWebapp forwards the demo webapp (the VM fresh-demo-vm-webapp
// creates) to listen on the host until ctx ends: each connection goes
// through an SSH channel to the VM's worker and on to the VM's prismnet
// address. ready is called once the listener is up. When ctx ends the
// listener and every forwarded connection are closed; the cluster and the
// VM keep running.
func ServeVMWebapp(ctx context.Context, op cluster.Operator, listen string, ready func(ServedWebapp)) error {
	t := newTunnels(op)
	defer t.close()
	var vm doubles.VM
	var errs []error
	for _, n := range op.Topology().Nodes {
		if !slices.Contains(n.Components, "plasmavmc") {
			continue
		}
		raw, err := t.run(ctx, n.Name, "cat /run/ultracloud/components/plasmavmc.port")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		code, body, err := t.get(ctx, n.Name, http.MethodGet, "http://127.0.0.1:"+strings.TrimSpace(raw)+"/v1/vms/"+DemoVM)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		if code == http.StatusNotFound {
			return fmt.Errorf("%w: plasmavmc has no VM %q; run `ultracloud cluster demo-vm-webapp` first", ErrNoWebapp, DemoVM)
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &vm) != nil {
			errs = append(errs, fmt.Errorf("%s: GET /v1/vms/%s: %d %s", n.Name, DemoVM, code, body))
			continue
		}
		break
	}
	if vm.Name == "" {
		return fmt.Errorf("asking plasmavmc for the webapp VM: %w", errors.Join(errs...))
	}
	if vm.Status == nil || vm.Status.IP == "" {
		return fmt.Errorf("%w: VM %s (placed on %s) is not running; run `ultracloud cluster demo-vm-webapp` again", ErrNoWebapp, DemoVM, vm.Node)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	target := net.JoinHostPort(vm.Status.IP, "80")
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			open[c] = true
		} else {
			delete(open, c)
		}
	}
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	if ready != nil {
		ready(ServedWebapp{URL: "http://" + ln.Addr().String() + "/", Node: vm.Status.Node, IP: vm.Status.IP})
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			track(c, true)
			defer track(c, false)
			up, err := t.dial(ctx, vm.Status.Node, target)
			if err != nil {
				if ctx.Err() == nil {
					slog.Warn("serve-vm-webapp: a connection could not be forwarded", "from", c.RemoteAddr(), "err", err)
				}
				return
			}
			defer up.Close()
			track(up, true)
			defer track(up, false)
			go func() {
				io.Copy(up, c)
				up.Close()
			}()
			io.Copy(c, up)
		}()
	}
	wg.Wait()
	return nil
}
