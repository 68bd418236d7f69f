package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func counting(name string, failures int, err error) (Check, *atomic.Int32) {
	var n atomic.Int32
	return Func{Name: name, F: func(context.Context) error {
		if int(n.Add(1)) <= failures {
			return err
		}
		return nil
	}}, &n
}

func TestCombinators(t *testing.T) {
	ok := Func{Name: "ok", F: func(context.Context) error { return nil }}
	bad := Func{Name: "bad", F: func(context.Context) error { return errors.New("broken") }}
	perm := Func{Name: "perm", F: func(context.Context) error { return Permanent(errors.New("gone")) }}
	cases := []struct {
		name      string
		c         Check
		wantErr   string
		permanent bool
	}{
		{"all ok", All(ok, ok), "", false},
		{"all names the failing member", All(ok, bad), "bad: broken", false},
		{"any ok", Any(bad, ok), "", false},
		{"any lists every failure", Any(bad, perm), "bad: broken\nperm: permanent failure: gone", false},
		{"any permanent when all are", Any(perm, perm), "gone", true},
	}
	for _, c := range cases {
		err := c.c.Run(context.Background())
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.wantErr)
		}
		if err != nil && isPermanent(err) != c.permanent {
			t.Errorf("%s: permanent=%v", c.name, isPermanent(err))
		}
	}
	if s := All(ok, Any(bad, ok)).String(); s != "ok and bad or ok" {
		t.Errorf("name %q", s)
	}
}

func TestEventually(t *testing.T) {
	// Retries until it holds.
	c, n := counting("flaky", 3, fmt.Errorf("%w: warming up", ErrNotYet))
	if err := Eventually(c, time.Millisecond, time.Minute).Run(context.Background()); err != nil || n.Load() != 4 {
		t.Fatalf("flaky: %v after %d attempts", err, n.Load())
	}
	// A permanent failure stops it at once, not at the timeout.
	p, n := counting("failed unit", 100, Permanent(errors.New("unit failed")))
	start := time.Now()
	err := Eventually(p, time.Millisecond, time.Hour).Run(context.Background())
	if !errors.Is(err, ErrPermanent) || n.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("permanent: %v after %d attempts, %v", err, n.Load(), time.Since(start))
	}
	// The timeout ends it with the last failure.
	never, _ := counting("never", 1<<30, errors.New("still down"))
	err = Eventually(never, time.Millisecond, 50*time.Millisecond).Run(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still down") {
		t.Fatalf("timeout: %v", err)
	}
}

func TestHostChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "hello guestbook")
	}))
	defer srv.Close()
	cases := []struct {
		c  Check
		ok bool
	}{
		{HTTP{URL: srv.URL, BodyContains: "guestbook"}, true},
		{HTTP{URL: srv.URL, BodyContains: "nope"}, false},
		{HTTP{URL: srv.URL + "/missing"}, false},
		{HTTP{URL: srv.URL + "/missing", Status: 404}, true},
		{TCPPort{Addr: strings.TrimPrefix(srv.URL, "http://")}, true},
	}
	for _, c := range cases {
		if err := c.c.Run(context.Background()); (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.c, err, c.ok)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := (TCPPort{Addr: addr}).Run(context.Background()); err == nil {
		t.Errorf("closed port %s reported open", addr)
	}
}
