package doubles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Member is one chainfire member: its name and its address on the
// cluster network.
type Member struct {
	Name string
	Host string
}

// ParseMembers parses "name=host,name=host" (the kernel argument
// ultracloud.chainfire=).
func ParseMembers(s string) ([]Member, error) {
	var out []Member
	var errs []error
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, host, ok := strings.Cut(f, "=")
		switch {
		case !ok || name == "" || host == "":
			errs = append(errs, fmt.Errorf("member %q: want NAME=HOST", f))
		case net.ParseIP(host) == nil && strings.ContainsAny(host, ":/ "):
			errs = append(errs, fmt.Errorf("member %q: host %q is neither an IP nor a host name", f, host))
		case seen[name]:
			errs = append(errs, fmt.Errorf("member %q: %s is listed twice", f, name))
		default:
			seen[name] = true
			out = append(out, Member{Name: name, Host: host})
		}
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no members: want NAME=HOST[,NAME=HOST…]"))
	}
	return out, errors.Join(errs...)
}

// Endpoints are the members' client URLs on port.
func Endpoints(members []Member, port int) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = fmt.Sprintf("http://%s", net.JoinHostPort(m.Host, fmt.Sprint(port)))
	}
	return out
}

// Default chainfire ports and timing.
const (
	ClientPort = 2379
	PeerPort   = 2380
	// HeartbeatMs and ElectionMs are etcd's heartbeat interval and election
	// timeout, raised from 100/1000 ms: under TCG on an oversubscribed host
	// a guest's timers run late by hundreds of milliseconds.
	HeartbeatMs = 500
	ElectionMs  = 5000
)

// ChainfireConfig configures a chainfire member.
type ChainfireConfig struct {
	// Name is this member's name; it must be one of Members.
	Name string
	// Members are all members of the cluster (the initial cluster).
	Members []Member
	// DataDir keeps the member's data (must survive a restart).
	DataDir string
	// ClientPort and PeerPort default to 2379 and 2380.
	ClientPort, PeerPort int
	// ClientHost is where clients connect (default 0.0.0.0: every address,
	// loopback included).
	ClientHost string
	// HealthAddr serves GET /health: 200 once the member has joined and
	// sees a leader, 503 before.
	HealthAddr string
	// HeartbeatMs and ElectionMs default to the package's.
	HeartbeatMs, ElectionMs uint
	// Log receives etcd's own log (default: standard error).
	LogOutput string
}

// RunChainfire runs one member until ctx ends.
func RunChainfire(ctx context.Context, c ChainfireConfig, log *slog.Logger) error {
	if c.ClientPort == 0 {
		c.ClientPort = ClientPort
	}
	if c.PeerPort == 0 {
		c.PeerPort = PeerPort
	}
	if c.ClientHost == "" {
		c.ClientHost = "0.0.0.0"
	}
	if c.HeartbeatMs == 0 {
		c.HeartbeatMs, c.ElectionMs = HeartbeatMs, ElectionMs
	}
	var self *Member
	var initial []string
	for i, m := range c.Members {
		if m.Name == c.Name {
			self = &c.Members[i]
		}
		initial = append(initial, fmt.Sprintf("%s=http://%s", m.Name, net.JoinHostPort(m.Host, fmt.Sprint(c.PeerPort))))
	}
	if self == nil {
		return fmt.Errorf("chainfire: %s is not a member (members: %v); list it in ultracloud.chainfire=", c.Name, c.Members)
	}
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.DataDir
	u := func(host string, port int) url.URL {
		return url.URL{Scheme: "http", Host: net.JoinHostPort(host, fmt.Sprint(port))}
	}
	cfg.ListenPeerUrls = []url.URL{u(self.Host, c.PeerPort)}
	cfg.AdvertisePeerUrls = []url.URL{u(self.Host, c.PeerPort)}
	cfg.ListenClientUrls = []url.URL{u(c.ClientHost, c.ClientPort)}
	cfg.AdvertiseClientUrls = []url.URL{u(self.Host, c.ClientPort)}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.InitialClusterToken = "ultracloud-chainfire"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.TickMs, cfg.ElectionMs = c.HeartbeatMs, c.ElectionMs
	cfg.LogLevel = "warn"
	if c.LogOutput != "" {
		cfg.LogOutputs = []string{c.LogOutput}
	}
	cfg.QuotaBackendBytes = 256 << 20
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("chainfire %s: %w", c.Name, err)
	}
	defer e.Close()
	log.Info("chainfire (etcd double) starting", "member", c.Name, "members", len(c.Members), "data", c.DataDir)

	ready := make(chan struct{})
	go func() {
		select {
		case <-e.Server.ReadyNotify():
			log.Info("chainfire joined", "member", c.Name, "id", e.Server.MemberID().String())
			close(ready)
		case <-ctx.Done():
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
		default:
			http.Error(w, "chainfire: not joined yet", http.StatusServiceUnavailable)
			return
		}
		if e.Server.Leader() == 0 {
			http.Error(w, "chainfire: no leader", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok chainfire member %s leader %s\n", e.Server.MemberID(), e.Server.Leader())
	})
	stop, err := serve(c.HealthAddr, mux, log)
	if err != nil {
		return err
	}
	defer stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("chainfire %s: %w", c.Name, err)
	}
}

// serve serves h on addr (nothing when addr is empty) until stop.
func serve(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "addr", addr, "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
