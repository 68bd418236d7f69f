package doubles

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// prismnet's tenant network and its state in chainfire.
const (
	// PrefixPrismnetNodes holds each prismnet node's underlay address
	// (under its lease): the VXLAN peers.
	PrefixPrismnetNodes = "/prismnet/nodes/"
	// PrefixPrismnetIPs holds each allocated tenant address and its owner
	// ("node/<node>" for a node's bridge, "port/<node>/<port>").
	PrefixPrismnetIPs = "/prismnet/ips/"
	// PrismnetCIDR is the tenant network spanning the workers.
	PrismnetCIDR = "10.200.0.0/24"
	// PrismnetVNI and PrismnetUDPPort are the VXLAN of the overlay.
	PrismnetVNI     = 4242
	PrismnetUDPPort = 4789
	// prismnetMTU leaves room for VXLAN's 50 bytes on a 1500-byte underlay.
	prismnetMTU = 1450
)

// PrismnetConfig configures RunPrismnet.
type PrismnetConfig struct {
	// Node is this node's name; Underlay its address on the cluster
	// network (the VXLAN endpoint).
	Node, Underlay string
	// HealthAddr serves GET /health and the port API.
	HealthAddr string
	// TTL of the node's registration lease (default 10 s).
	TTL time.Duration
	// NetNS is the network namespace the overlay is built in (0, the
	// zero value: the process's); tests give each "node" its own.
	NetNS netns.NsHandle
	// Bridge and VXLAN name the devices (default pn0 and pnvx).
	Bridge, VXLAN string
}

// Port is a tenant network attachment: a network namespace with one
// interface (eth0) on the overlay, what a VM's NIC is on real prismnet.
type Port struct {
	Name  string `json:"name"`
	Node  string `json:"node"`
	IP    string `json:"ip"`
	NetNS string `json:"netns"`
}

// RunPrismnet runs prismnet's double on a worker until ctx ends: a bridge
// with an address on PrismnetCIDR and a VXLAN device joined to it, whose
// flooding entries point at every other prismnet node registered in
// chainfire (kept in sync by a watch), so the tenant network spans the
// workers over the cluster network. Addresses are allocated in chainfire
// (one owner per address, by transaction). The port API on HealthAddr:
// POST /v1/ports/{name} attaches a new network namespace with an address
// (201, the Port), GET /v1/ports lists this node's, DELETE
// /v1/ports/{name} detaches and frees the address.
func RunPrismnet(ctx context.Context, cfg PrismnetConfig, cli *clientv3.Client, log *slog.Logger) error {
	p := &prismnet{cfg: cfg, cli: cli, log: log, ports: map[string]Port{}}
	p.cfg.Bridge, p.cfg.VXLAN = cmp.Or(cfg.Bridge, "pn0"), cmp.Or(cfg.VXLAN, "pnvx")
	p.cfg.TTL = cmp.Or(cfg.TTL, 10*time.Second)
	if net.ParseIP(cfg.Underlay) == nil {
		return fmt.Errorf("prismnet: underlay %q is not an IP address", cfg.Underlay)
	}
	var err error
	if cfg.NetNS > 0 {
		p.h, err = netlink.NewHandleAt(cfg.NetNS, unix.NETLINK_ROUTE)
	} else {
		p.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return fmt.Errorf("prismnet: netlink: %w", err)
	}
	defer p.h.Delete()
	ip, err := p.allocate(ctx, "node/"+cfg.Node)
	if err != nil {
		return err
	}
	p.releaseStale(ctx)
	if err := p.overlay(ip); err != nil {
		return fmt.Errorf("prismnet: overlay: %w", err)
	}
	// The node's peer registration lives under a lease that is renewed
	// when lost (a pause past its TTL), so peers add it back.
	err = (&lease{}).keep(ctx, cli, p.cfg.TTL, "prismnet", log, func(ctx context.Context, id clientv3.LeaseID) error {
		_, err := cli.Put(ctx, PrefixPrismnetNodes+cfg.Node, cfg.Underlay, clientv3.WithLease(id))
		return err
	})
	if err != nil {
		return err
	}
	log.Info("prismnet up", "bridge", p.cfg.Bridge, "ip", ip, "underlay", cfg.Underlay)
	go p.syncPeers(ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("prismnet", cli))
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		out := slices.SortedFunc(func(yield func(Port) bool) {
			for _, v := range p.ports {
				if !yield(v) {
					return
				}
			}
		}, func(a, b Port) int { return strings.Compare(a.Name, b.Name) })
		p.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /v1/ports/{name}", func(w http.ResponseWriter, r *http.Request) {
		port, err := p.attach(r.Context(), r.PathValue("name"))
		if errors.Is(err, errBadPort) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err != nil {
			http.Error(w, "prismnet: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(port)
	})
	mux.HandleFunc("DELETE /v1/ports/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := p.detach(r.Context(), r.PathValue("name")); err != nil {
			http.Error(w, "prismnet: "+err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	err = run(ctx, cfg.HealthAddr, mux, log)
	p.mu.Lock()
	names := slices.Collect(func(yield func(string) bool) {
		for n := range p.ports {
			if !yield(n) {
				return
			}
		}
	})
	p.mu.Unlock()
	for _, n := range names {
		p.detach(context.WithoutCancel(ctx), n)
	}
	return err
}

type prismnet struct {
	cfg PrismnetConfig
	cli *clientv3.Client
	log *slog.Logger
	h   *netlink.Handle

	mu    sync.Mutex
	ports map[string]Port
}

var (
	errBadPort = errors.New("bad port")
	portName   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,9}$`)
)

// allocate returns owner's address on PrismnetCIDR, taking the lowest free
// one (from .2) by a transaction that fails if another owner took it.
func (p *prismnet) allocate(ctx context.Context, owner string) (string, error) {
	prefix := netip.MustParsePrefix(PrismnetCIDR)
	for attempt := 0; attempt < 8; attempt++ {
		resp, err := p.cli.Get(ctx, PrefixPrismnetIPs, clientv3.WithPrefix())
		if err != nil {
			return "", err
		}
		taken := map[string]bool{}
		for _, kv := range resp.Kvs {
			ip := strings.TrimPrefix(string(kv.Key), PrefixPrismnetIPs)
			if string(kv.Value) == owner {
				return ip, nil
			}
			taken[ip] = true
		}
		for a := prefix.Addr().Next().Next(); prefix.Contains(a); a = a.Next() {
			if taken[a.String()] || a.As4()[3] == 255 {
				continue
			}
			key := PrefixPrismnetIPs + a.String()
			t, err := p.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, owner)).Commit()
			if err != nil {
				return "", err
			}
			if t.Succeeded {
				return a.String(), nil
			}
			break // taken meanwhile: read again
		}
		if len(taken) >= 253 {
			return "", fmt.Errorf("prismnet: %s is full", PrismnetCIDR)
		}
	}
	return "", fmt.Errorf("prismnet: could not allocate an address for %s", owner)
}

func (p *prismnet) release(ctx context.Context, ip, owner string) {
	key := PrefixPrismnetIPs + ip
	p.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", owner)).Then(clientv3.OpDelete(key)).Commit()
}

// overlay creates (or adopts) the bridge with ip and the VXLAN device.
func (p *prismnet) overlay(ip string) error {
	br, err := p.h.LinkByName(p.cfg.Bridge)
	if err != nil {
		if err := p.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: p.cfg.Bridge, MTU: prismnetMTU}}); err != nil {
			return fmt.Errorf("bridge %s: %w", p.cfg.Bridge, err)
		}
		if br, err = p.h.LinkByName(p.cfg.Bridge); err != nil {
			return err
		}
	}
	addr, _ := netlink.ParseAddr(ip + "/24")
	if err := p.h.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", ip, p.cfg.Bridge, err)
	}
	if _, err := p.h.LinkByName(p.cfg.VXLAN); err != nil {
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: p.cfg.VXLAN, MTU: prismnetMTU, MasterIndex: br.Attrs().Index},
			VxlanId: PrismnetVNI, SrcAddr: net.ParseIP(p.cfg.Underlay), Port: PrismnetUDPPort, Learning: true}
		if err := p.h.LinkAdd(vx); err != nil {
			return fmt.Errorf("vxlan %s (is the vxlan module loaded?): %w", p.cfg.VXLAN, err)
		}
	}
	vx, err := p.h.LinkByName(p.cfg.VXLAN)
	if err != nil {
		return err
	}
	for _, l := range []netlink.Link{vx, br} {
		if err := p.h.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

// syncPeers keeps one flooding entry per other prismnet node on the VXLAN
// device (head-end replication): every change of the node registrations
// reconciles them.
func (p *prismnet) syncPeers(ctx context.Context) {
	for ctx.Err() == nil {
		resp, err := p.cli.Get(ctx, PrefixPrismnetNodes, clientv3.WithPrefix())
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		var peers []net.IP
		for _, kv := range resp.Kvs {
			if strings.TrimPrefix(string(kv.Key), PrefixPrismnetNodes) != p.cfg.Node {
				if ip := net.ParseIP(string(kv.Value)); ip != nil {
					peers = append(peers, ip)
				}
			}
		}
		if err := p.setPeers(peers); err != nil {
			p.log.Warn("prismnet: peers", "err", err)
		}
		wctx, cancel := context.WithCancel(ctx)
		select {
		case <-p.cli.Watch(wctx, PrefixPrismnetNodes, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)):
		case <-time.After(30 * time.Second): // and a periodic resync
		case <-ctx.Done():
		}
		cancel()
	}
}

func (p *prismnet) setPeers(peers []net.IP) error {
	vx, err := p.h.LinkByName(p.cfg.VXLAN)
	if err != nil {
		return err
	}
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	have, err := p.h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range have {
		if n.HardwareAddr.String() == zero.String() && !slices.ContainsFunc(peers, n.IP.Equal) {
			errs = append(errs, p.h.NeighDel(&n))
		}
	}
	for _, ip := range peers {
		if slices.ContainsFunc(have, func(n netlink.Neigh) bool { return n.HardwareAddr.String() == zero.String() && n.IP.Equal(ip) }) {
			continue
		}
		errs = append(errs, p.h.NeighAppend(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE,
			Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, HardwareAddr: zero, IP: ip}))
	}
	return errors.Join(errs...)
}

// attach creates port name: a named network namespace whose eth0 (one end
// of a veth pair, the other on the bridge) has a tenant address.
func (p *prismnet) attach(ctx context.Context, name string) (Port, error) {
	if !portName.MatchString(name) {
		return Port{}, fmt.Errorf("%w: %q: a port name is 1-10 of a-z, 0-9 and -", errBadPort, name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ports[name]; ok {
		return Port{}, fmt.Errorf("%w: port %q exists on %s", errBadPort, name, p.cfg.Node)
	}
	owner := "port/" + p.cfg.Node + "/" + name
	ip, err := p.allocate(ctx, owner)
	if err != nil {
		return Port{}, err
	}
	port := Port{Name: name, Node: p.cfg.Node, IP: ip, NetNS: "pn-" + p.cfg.Node + "-" + name}
	if err := p.plumb(port); err != nil {
		p.unplumb(port)
		p.release(ctx, ip, owner)
		return Port{}, err
	}
	p.ports[name] = port
	return port, nil
}

// plumb creates the port's namespace and veth pair.
func (p *prismnet) plumb(port Port) error {
	ns, err := newNamedNS(port.NetNS)
	if err != nil {
		return fmt.Errorf("netns %s: %w", port.NetNS, err)
	}
	defer ns.Close()
	br, err := p.h.LinkByName(p.cfg.Bridge)
	if err != nil {
		return err
	}
	host, peer := "pnv-"+port.Name, "pnp-"+port.Name
	if err := p.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MTU: prismnetMTU, MasterIndex: br.Attrs().Index}, PeerName: peer}); err != nil {
		return fmt.Errorf("veth %s: %w", host, err)
	}
	hl, err := p.h.LinkByName(host)
	if err != nil {
		return err
	}
	if err := p.h.LinkSetUp(hl); err != nil {
		return err
	}
	pl, err := p.h.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := p.h.LinkSetNsFd(pl, int(ns)); err != nil {
		return err
	}
	in, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer in.Delete()
	if pl, err = in.LinkByName(peer); err != nil {
		return err
	}
	if err := in.LinkSetName(pl, "eth0"); err != nil {
		return err
	}
	addr, _ := netlink.ParseAddr(port.IP + "/24")
	if err := in.AddrAdd(pl, addr); err != nil {
		return err
	}
	lo, err := in.LinkByName("lo")
	if err != nil {
		return err
	}
	for _, l := range []netlink.Link{lo, pl} {
		if err := in.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

func (p *prismnet) unplumb(port Port) {
	if l, err := p.h.LinkByName("pnv-" + port.Name); err == nil {
		p.h.LinkDel(l)
	}
	netns.DeleteNamed(port.NetNS)
}

// releaseStale frees what an earlier run of this node left behind (a
// crash, a power cut): its ports' addresses and network namespaces. A
// new run starts with no ports.
func (p *prismnet) releaseStale(ctx context.Context) {
	resp, err := p.cli.Get(ctx, PrefixPrismnetIPs, clientv3.WithPrefix())
	if err != nil {
		return
	}
	mine := "port/" + p.cfg.Node + "/"
	for _, kv := range resp.Kvs {
		if name, ok := strings.CutPrefix(string(kv.Value), mine); ok {
			ip := strings.TrimPrefix(string(kv.Key), PrefixPrismnetIPs)
			p.unplumb(Port{Name: name, NetNS: "pn-" + p.cfg.Node + "-" + name})
			p.release(ctx, ip, string(kv.Value))
			p.log.Info("released a stale port", "port", name, "ip", ip)
		}
	}
}

func (p *prismnet) detach(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	port, ok := p.ports[name]
	if !ok {
		return fmt.Errorf("no port %q on %s", name, p.cfg.Node)
	}
	p.unplumb(port)
	p.release(ctx, port.IP, "port/"+p.cfg.Node+"/"+name)
	delete(p.ports, name)
	return nil
}

// newNamedNS creates a named network namespace (/run/netns/NAME) without
// moving the calling goroutine's thread into it for longer than the call.
func newNamedNS(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// The thread cannot go back: leave it locked so it dies with the
		// goroutine instead of serving others in the wrong namespace.
		runtime.LockOSThread()
		return 0, errors.Join(err, serr)
	}
	return ns, err
}

// attachPort asks the prismnet API at base for port name on its node: a
// new one, or the one of that name it already has there (left by an
// earlier run of the caller: a restart, a stop whose release failed).
func attachPort(ctx context.Context, base, name string) (Port, error) {
	var port Port
	code, body, err := call(ctx, http.MethodPost, base+"/v1/ports/"+name)
	if err != nil {
		return Port{}, err
	}
	if code == http.StatusCreated {
		err := json.Unmarshal(body, &port)
		return port, err
	}
	if code == http.StatusBadRequest && bytes.Contains(body, []byte("exists")) {
		_, list, err := call(ctx, http.MethodGet, base+"/v1/ports")
		if err != nil {
			return Port{}, err
		}
		var ports []Port
		json.Unmarshal(list, &ports)
		for _, pt := range ports {
			if pt.Name == name {
				return pt, nil
			}
		}
	}
	return Port{}, fmt.Errorf("prismnet port %s: %d %s", name, code, bytes.TrimSpace(body))
}
