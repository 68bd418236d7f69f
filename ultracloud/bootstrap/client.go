package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Client is the machine side of the phone-home protocol, on go-retryablehttp:
// connection errors, 429 and 5xx are retried with capped backoff (a server's
// Retry-After is honoured up to RetryWaitMax); 4xx answers are final and
// returned with the server's message.
type Client struct {
	base  string
	token string
	hc    *retryablehttp.Client
	log   *slog.Logger
}

// ClientOption adjusts a Client.
type ClientOption func(*Client)

// WithClientLogger logs requests and retries to l (nil: no logging).
func WithClientLogger(l *slog.Logger) ClientOption {
	return func(c *Client) {
		if l != nil { // a typed nil in retryablehttp's Logger interface panics
			c.log, c.hc.Logger = l, l
		}
	}
}

// WithToken sets the node token (an installed system reuses the one its
// installer was given).
func WithToken(tok string) ClientOption { return func(c *Client) { c.token = tok } }

// WithTransport sets the HTTP transport (e.g. one shared by many clients
// in a load test).
func WithTransport(rt http.RoundTripper) ClientOption {
	return func(c *Client) { c.hc.HTTPClient.Transport = rt }
}

// WithRetries sets how often a request is retried and the longest wait.
func WithRetries(max int, waitMax time.Duration) ClientOption {
	return func(c *Client) { c.hc.RetryMax, c.hc.RetryWaitMax = max, waitMax }
}

// NewClient returns a client of the server at baseURL (e.g. http://10.0.2.100).
func NewClient(baseURL string, opts ...ClientOption) *Client {
	hc := retryablehttp.NewClient()
	hc.RetryMax = 8
	hc.RetryWaitMin = 200 * time.Millisecond
	hc.RetryWaitMax = 5 * time.Second
	hc.Logger = nil // the default logger prints every request
	hc.CheckRetry = retryablehttp.ErrorPropagatedRetryPolicy
	hc.HTTPClient.Timeout = 5 * time.Minute
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, log: slog.New(slog.DiscardHandler)}
	hc.Backoff = func(min, max time.Duration, n int, resp *http.Response) time.Duration {
		// DefaultBackoff follows Retry-After without bound; cap it.
		return minDur(retryablehttp.DefaultBackoff(min, max, n, resp), c.hc.RetryWaitMax)
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// Token is the node token from the last PhoneHome (or WithToken).
func (c *Client) Token() string { return c.token }

// ForgetToken drops the node token (a decommissioned node's is revoked):
// the next PhoneHome enrols without one.
func (c *Client) ForgetToken() { c.token = "" }

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rdr io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rdr = bytes.NewReader(data)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, rdr)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return responseError(method, path, resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}

func responseError(method, path string, resp *http.Response) error {
	var e apiError
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	var sentinel error
	switch resp.StatusCode {
	case http.StatusNotFound:
		if strings.HasSuffix(path, "/phone-home") {
			sentinel = ErrUnknownMachine
		}
	case http.StatusForbidden, http.StatusUnauthorized:
		sentinel = ErrForbidden
	case http.StatusConflict:
		sentinel = ErrConflict
	}
	err := fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, http.StatusText(resp.StatusCode), msg)
	if sentinel != nil {
		return fmt.Errorf("%w: %w", sentinel, err)
	}
	return err
}

// PhoneHome enrols the machine and keeps the node token it gets.
func (c *Client) PhoneHome(ctx context.Context, id Identity) (*Enrollment, error) {
	var e Enrollment
	if err := c.do(ctx, http.MethodPost, "/api/v1/phone-home", id, &e); err != nil {
		return nil, err
	}
	c.token = e.Token
	return &e, nil
}

// ReportPhase reports a phase of node.
func (c *Client) ReportPhase(ctx context.Context, node string, p Phase, reason string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/nodes/"+node+"/phase", PhaseReport{Phase: p, Reason: reason}, nil)
}

// Report reports a phase of node with everything a PhaseReport carries
// (e.g. the System a closure agent activated).
func (c *Client) Report(ctx context.Context, node string, rep PhaseReport) error {
	return c.do(ctx, http.MethodPost, "/api/v1/nodes/"+node+"/phase", rep, nil)
}

// Desired returns the system node should run.
func (c *Client) Desired(ctx context.Context, node string) (Desired, error) {
	var d Desired
	err := c.do(ctx, http.MethodGet, "/api/v1/nodes/"+node+"/desired", nil, &d)
	return d, err
}

// FetchBundle downloads ref to dst. An interrupted download resumes from
// dst+".part" with a Range request; the result must match ref's size and
// sha256 or nothing is left at dst.
func (c *Client) FetchBundle(ctx context.Context, ref BundleRef, dst string) error {
	part := dst + ".part"
	var lastErr error
	for attempt := 0; attempt <= c.hc.RetryMax; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := c.fetchOnce(ctx, ref, part)
		if err == nil && done {
			break
		}
		if err != nil {
			var perm *permanentError
			if errors.As(err, &perm) {
				return perm.err
			}
			lastErr = err
			c.log.Warn("bundle download interrupted; resuming", "err", err, "attempt", attempt+1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(c.hc.RetryWaitMin):
			}
		}
		if attempt == c.hc.RetryMax {
			return fmt.Errorf("fetch bundle: %w", lastErr)
		}
	}
	sum, err := FileSHA256(part)
	if err != nil {
		return err
	}
	if sum != ref.SHA256 {
		os.Remove(part)
		return fmt.Errorf("%w: downloaded bundle has sha256 %s, expected %s", ErrBundle, sum, ref.SHA256)
	}
	return os.Rename(part, dst)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }

// fetchOnce continues the download in part; done reports completion.
func (c *Client) fetchOnce(ctx context.Context, ref BundleRef, part string) (bool, error) {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return false, &permanentError{err}
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, &permanentError{err}
	}
	if have == ref.Size {
		return true, nil
	}
	if have > ref.Size {
		f.Truncate(0)
		have, _ = f.Seek(0, io.SeekStart)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ref.URL, nil)
	if err != nil {
		return false, &permanentError{err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		req.Header.Set("If-Range", `"`+ref.SHA256+`"`)
	}
	resp, err := c.hc.HTTPClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if have > 0 {
			f.Truncate(0)
			f.Seek(0, io.SeekStart)
		}
	default:
		err := responseError("GET", ref.URL, resp)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return false, err
		}
		return false, &permanentError{err}
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return false, err
	}
	n, _ := f.Seek(0, io.SeekCurrent)
	return n == ref.Size, nil
}
