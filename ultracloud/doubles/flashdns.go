package doubles

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// flashdns's zone and its records in chainfire.
const (
	// FlashDNSZone is the zone flashdns is authoritative for.
	FlashDNSZone = "ultracloud.internal."
	// PrefixFlashDNS holds each name's A records (JSON list of IPv4).
	PrefixFlashDNS = "/flashdns/records/"
	// FlashDNSPort is the DNS port (UDP and TCP) of the fixture's flashdns.
	FlashDNSPort = 53
)

// RunFlashDNS runs flashdns's double until ctx ends: an authoritative DNS
// server for FlashDNSZone (github.com/miekg/dns, UDP and TCP on dnsAddr)
// answering A queries from the records in chainfire (a linearizable read
// per query, so a record set through any node is answered by every
// other; NXDOMAIN for unknown names, REFUSED outside the zone), and an
// HTTP API on addr: PUT /v1/records/{name} with a JSON list of IPv4
// addresses sets a name's records, DELETE removes them, GET /health.
func RunFlashDNS(ctx context.Context, addr, dnsAddr string, cli *clientv3.Client, log *slog.Logger) error {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		qn := strings.ToLower(q.Question[0].Name)
		if !dns.IsSubDomain(FlashDNSZone, qn) {
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		resp, err := cli.Get(qctx, PrefixFlashDNS+strings.TrimSuffix(qn, "."))
		if err != nil {
			m.Rcode = dns.RcodeServerFailure
			w.WriteMsg(m)
			return
		}
		if len(resp.Kvs) == 0 {
			m.Rcode = dns.RcodeNameError
			w.WriteMsg(m)
			return
		}
		var ips []string
		json.Unmarshal(resp.Kvs[0].Value, &ips)
		if q.Question[0].Qtype == dns.TypeA || q.Question[0].Qtype == dns.TypeANY {
			for _, ip := range ips {
				if p := net.ParseIP(ip).To4(); p != nil {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: p})
				}
			}
		}
		w.WriteMsg(m)
	})
	var servers []*dns.Server
	for _, proto := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: dnsAddr, Net: proto, Handler: h}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				started <- err
			}
		}()
		if err := <-started; err != nil {
			return fmt.Errorf("flashdns: %s %s: %w", proto, dnsAddr, err)
		}
		servers = append(servers, srv)
	}
	defer func() {
		for _, s := range servers {
			s.Shutdown()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("flashdns", cli))
	mux.HandleFunc("PUT /v1/records/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := strings.ToLower(strings.TrimSuffix(r.PathValue("name"), "."))
		if !dns.IsSubDomain(FlashDNSZone, name+".") {
			http.Error(w, fmt.Sprintf("flashdns: %q is not in %s", name, FlashDNSZone), http.StatusBadRequest)
			return
		}
		var ips []string
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&ips); err != nil {
			http.Error(w, "flashdns: want a JSON list of IPv4 addresses: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, ip := range ips {
			if net.ParseIP(ip).To4() == nil {
				http.Error(w, fmt.Sprintf("flashdns: %q is not an IPv4 address", ip), http.StatusBadRequest)
				return
			}
		}
		raw, _ := json.Marshal(ips)
		if _, err := cli.Put(r.Context(), PrefixFlashDNS+name, string(raw)); err != nil {
			http.Error(w, "flashdns: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/records/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := strings.ToLower(strings.TrimSuffix(r.PathValue("name"), "."))
		if _, err := cli.Delete(r.Context(), PrefixFlashDNS+name); err != nil {
			http.Error(w, "flashdns: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Info("flashdns up", "dns", dnsAddr, "zone", FlashDNSZone)
	return run(ctx, addr, mux, log)
}
