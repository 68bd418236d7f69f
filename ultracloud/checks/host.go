package checks

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTP fetches URL from the host and holds when the status is Status
// (default any 2xx) and the body contains BodyContains (if set).
type HTTP struct {
	URL          string
	Status       int
	BodyContains string
	// Client defaults to one with a 10 s timeout.
	Client *http.Client
}

func (c HTTP) String() string { return "GET " + c.URL }

// Run implements Check.
func (c HTTP) Run(ctx context.Context) error {
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return Permanent(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotYet, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if (c.Status == 0 && resp.StatusCode/100 != 2) || (c.Status != 0 && resp.StatusCode != c.Status) {
		return fmt.Errorf("%w: status %d: %s", ErrNotYet, resp.StatusCode, truncate(strings.TrimSpace(string(body)), 200))
	}
	if !strings.Contains(string(body), c.BodyContains) {
		return fmt.Errorf("%w: body lacks %q", ErrNotYet, c.BodyContains)
	}
	return nil
}

// TCPPort holds when something accepts TCP connections at Addr
// ("host:port") from the host.
type TCPPort struct {
	Addr string
}

func (c TCPPort) String() string { return "tcp " + c.Addr + " open" }

// Run implements Check.
func (c TCPPort) Run(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotYet, err)
	}
	return conn.Close()
}
