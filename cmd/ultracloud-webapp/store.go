package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/photoncloud/testkit/internal/s3client"
)

// store keeps the guestbook's entries.
type store interface {
	put(ctx context.Context, e Entry) error
	// list returns every entry, oldest first.
	list(ctx context.Context) ([]Entry, error)
}

// memStore keeps entries in memory (--memory).
type memStore struct {
	mu sync.Mutex
	es []Entry
}

func (m *memStore) put(_ context.Context, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := slices.IndexFunc(m.es, func(x Entry) bool { return x.ID == e.ID }); i >= 0 {
		m.es[i] = e // written again under its ID: once
		return nil
	}
	m.es = append(m.es, e)
	return nil
}

func (m *memStore) list(context.Context) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.es), nil
}

// s3Store keeps one object per entry, entries/<id>.json, in a bucket of
// an S3 endpoint (path-style requests; lightningstor's double does not
// check signatures). A 5xx is retried, as an S3 SDK would.
type s3Store struct {
	c *s3client.Client
}

const entryPrefix = "entries/"

func (s *s3Store) do(ctx context.Context, method, path string, q url.Values, body []byte) (int, []byte, error) {
	return s.c.Do(ctx, method, path, q, body)
}

// ensureBucket creates the bucket unless it exists.
func (s *s3Store) ensureBucket(ctx context.Context) error {
	code, body, err := s.do(ctx, http.MethodPut, "", nil, nil)
	if err != nil {
		return err
	}
	if code == http.StatusOK || bytes.Contains(body, []byte("BucketAlreadyExists")) || bytes.Contains(body, []byte("BucketAlreadyOwnedByYou")) {
		return nil
	}
	return fmt.Errorf("create bucket %s: %d %s", s.c.Bucket, code, bytes.TrimSpace(body))
}

func (s *s3Store) put(ctx context.Context, e Entry) error {
	data, _ := json.Marshal(e)
	code, body, err := s.do(ctx, http.MethodPut, "/"+entryPrefix+e.ID+".json", nil, data)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("put %s: %d %s", e.ID, code, bytes.TrimSpace(body))
	}
	return nil
}

type listResult struct {
	Contents []struct {
		Key string `xml:"Key"`
	} `xml:"Contents"`
	IsTruncated           bool   `xml:"IsTruncated"`
	NextContinuationToken string `xml:"NextContinuationToken"`
}

func (s *s3Store) list(ctx context.Context) ([]Entry, error) {
	var keys []string
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {entryPrefix}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		code, body, err := s.do(ctx, http.MethodGet, "", q, nil)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("list: %d %s", code, bytes.TrimSpace(body))
		}
		var lr listResult
		if err := xml.Unmarshal(body, &lr); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		for _, c := range lr.Contents {
			keys = append(keys, c.Key)
		}
		if !lr.IsTruncated || lr.NextContinuationToken == "" {
			break
		}
		token = lr.NextContinuationToken
	}
	slices.Sort(keys)
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		code, body, err := s.do(ctx, http.MethodGet, "/"+k, nil, nil)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("get %s: %d %s", k, code, bytes.TrimSpace(body))
		}
		var e Entry
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("entry %s: %w", k, err)
		}
		out = append(out, e)
	}
	return out, nil
}
