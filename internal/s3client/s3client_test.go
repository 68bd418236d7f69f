package s3client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// flaky answers fail (a status) to its first n requests, then 200 with
// the request's method, path and body.
func flaky(t *testing.T, n int64, fail int) (*httptest.Server, *atomic.Int64) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			http.Error(w, "<Error><Code>InternalError</Code></Error>", fail)
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestDoRetries(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		failures              int64
		status                int
		attempts              int
		wantCode              int
		wantRequests, retries int64
	}{
		{"answers at once", 0, 500, 4, 200, 1, 0},
		{"500 twice then 200", 2, 500, 4, 200, 3, 2},
		{"503 past the attempts", 10, 503, 3, 503, 3, 2},
		{"404 is an answer", 5, 404, 4, 404, 1, 0},
		{"one attempt only", 1, 502, 1, 502, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, seen := flaky(t, tc.failures, tc.status)
			c := &Client{Endpoint: srv.URL + "/", Bucket: "b", Attempts: tc.attempts, Backoff: time.Millisecond}
			code, body, err := c.Do(context.Background(), http.MethodPut, "/k", url.Values{"x": {"1"}}, []byte("data"))
			if err != nil || code != tc.wantCode {
				t.Fatalf("Do: %d %q %v, want %d", code, body, err, tc.wantCode)
			}
			if code == 200 && string(body) != "PUT /b/k?x=1 data" {
				t.Fatalf("the server saw %q", body)
			}
			if seen.Load() != tc.wantRequests || c.Retries() != tc.retries {
				t.Fatalf("%d requests, %d retries; want %d, %d", seen.Load(), c.Retries(), tc.wantRequests, tc.retries)
			}
		})
	}
}

// A transport error is retried and, after the last attempt, returned
// naming the request; a cancelled context ends the waits.
func TestDoTransportErrorsAndContext(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more
	c := &Client{Endpoint: addr, Bucket: "b", Attempts: 3, Backoff: time.Millisecond}
	if _, _, err := c.Do(context.Background(), http.MethodGet, "/k", nil, nil); err == nil || c.Retries() != 2 {
		t.Fatalf("closed endpoint: %v after %d retries, want an error after 2", err, c.Retries())
	}

	slow, _ := flaky(t, 100, 500)
	c = &Client{Endpoint: slow.URL, Bucket: "b", Backoff: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := c.Do(ctx, http.MethodGet, "", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do past its context: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Do waited %v past its context", d)
	}
}
