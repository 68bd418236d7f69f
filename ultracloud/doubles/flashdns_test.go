package doubles

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// flashdns over chainfire: a record set through one instance's API is
// answered by another instance over UDP and TCP (real DNS, miekg/dns);
// unknown names are NXDOMAIN, other zones REFUSED; a deleted record is
// gone; bad records are refused.
func TestFlashDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cli := oneMember(t, "127.0.0.22", log)
	api1, api2 := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	dns1, dns2 := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	spawn(t, func(ctx context.Context) error { return RunFlashDNS(ctx, api1, dns1, cli, log) })
	spawn(t, func(ctx context.Context) error { return RunFlashDNS(ctx, api2, dns2, cli, log) })
	put := func(name, body string) int {
		req, _ := http.NewRequest(http.MethodPut, "http://"+api1+"/v1/records/"+name, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "flashdns", time.Minute, func() error {
		if c := put("web.ultracloud.internal", `["10.200.0.9","10.200.0.10"]`); c != http.StatusNoContent {
			return fmt.Errorf("PUT: %d", c)
		}
		return nil
	})
	query := func(proto, server, name string) (*dns.Msg, error) {
		c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, server)
		return r, err
	}
	for _, proto := range []string{"udp", "tcp"} {
		r, err := query(proto, dns2, "web.ultracloud.internal.")
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || !r.Authoritative {
			t.Fatalf("%s A web through the other instance: %v %v", proto, r, err)
		}
		if a := r.Answer[0].(*dns.A).A.String(); a != "10.200.0.9" {
			t.Fatalf("first A %s", a)
		}
	}
	if r, err := query("udp", dns2, "nope.ultracloud.internal."); err != nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("unknown name: %v %v", r, err)
	}
	if r, err := query("udp", dns2, "example.com."); err != nil || r.Rcode != dns.RcodeRefused {
		t.Fatalf("other zone: %v %v", r, err)
	}
	for body, name := range map[string]string{`["300.1.1.1"]`: "x.ultracloud.internal", `nope`: "x.ultracloud.internal", `["10.0.0.1"]`: "example.com"} {
		if c := put(name, body); c != http.StatusBadRequest {
			t.Errorf("PUT %s %s: %d, want 400", name, body, c)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, "http://"+api2+"/v1/records/web.ultracloud.internal", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	if r, err := query("tcp", dns1, "web.ultracloud.internal."); err != nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("deleted name: %v %v", r, err)
	}
}
