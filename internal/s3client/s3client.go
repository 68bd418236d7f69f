// Package s3client is the small S3 client of the guest programs (the
// webapp, object-bench): unsigned, path-style requests to one bucket,
// retried as the AWS SDKs' standard retry mode retries: a 5xx answer or
// a failed connection is tried again, with a doubling wait, up to a
// number of attempts. Every request these programs send is idempotent (a
// whole object PUT or GET, a bucket PUT, a list), so a retry cannot do
// anything twice.
package s3client

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Client sends requests to one bucket of an S3 endpoint. Its zero
// options take the defaults; it is safe for concurrent use.
type Client struct {
	// Endpoint is the S3 endpoint, e.g. http://10.100.0.1:7480.
	Endpoint string
	// Bucket is the bucket every request goes to.
	Bucket string
	// HTTP sends the requests (default: a client with a 30 s timeout).
	HTTP *http.Client
	// Attempts is how often a request is tried in all (default 4).
	Attempts int
	// Backoff is the wait before the first retry, doubled before each
	// next one (default 1 s).
	Backoff time.Duration

	retries atomic.Int64
}

// MaxBody is the most of an answer's body Do reads.
const MaxBody = 64 << 20

// Do sends method to /Bucket+path (path "" is the bucket itself, else it
// starts with "/") with query and body, and returns the answer's status
// and body. A 5xx answer or a transport error is retried; after the last
// attempt Do returns the last answer (err nil) or the last transport
// error. ctx bounds everything, the waits included.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body []byte) (int, []byte, error) {
	u := strings.TrimSuffix(c.Endpoint, "/") + "/" + c.Bucket + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	attempts := max(cmp.Or(c.Attempts, 4), 1)
	wait := cmp.Or(c.Backoff, time.Second)
	for i := 1; ; i++ {
		code, data, err := c.once(ctx, method, u, body)
		if i == attempts || ctx.Err() != nil || (err == nil && code < 500) {
			if err != nil {
				err = fmt.Errorf("%s %s (attempt %d of %d): %w", method, u, i, attempts, err)
			}
			return code, data, err
		}
		c.retries.Add(1)
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("%s %s: %w", method, u, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (c *Client) once(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.ContentLength = int64(len(body))
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	return resp.StatusCode, data, err
}

// Retries is how many retries the client's requests have needed so far.
func (c *Client) Retries() int64 { return c.retries.Load() }
