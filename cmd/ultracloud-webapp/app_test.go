package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/photoncloud/testkit/internal/s3client"
)

// The guestbook over a real S3 server (gofakes3): entries written through
// the JSON API and the form are listed in order by a second app instance
// on the same bucket (what a recreated VM is), and shown on the page,
// escaped; bad entries are refused.
func TestGuestbookKeepsEntriesInS3(t *testing.T) {
	s3 := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer s3.Close()
	newApp := func() *httptest.Server {
		st := &s3Store{c: &s3client.Client{Endpoint: s3.URL, Bucket: "guestbook", HTTP: &http.Client{Timeout: 5 * time.Second}}}
		if err := st.ensureBucket(t.Context()); err != nil {
			t.Fatal(err)
		}
		return httptest.NewServer((&app{store: st, host: "vm", storage: "s3"}).routes())
	}
	a := newApp()
	defer a.Close()
	resp, err := http.Post(a.URL+"/api/entries", "application/json", strings.NewReader(`{"name":"ada","message":"first <b>"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("post: %v %v", resp, err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(a.URL+"/entries", url.Values{"name": {"bob"}, "message": {"second"}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("form: %v %v", resp, err)
	}
	for _, bad := range []string{`{"name":"","message":"x"}`, `{"name":"x","message":""}`, `not json`} {
		resp, _ := http.Post(a.URL+"/api/entries", "application/json", strings.NewReader(bad))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, resp.StatusCode)
		}
	}
	b := newApp() // a second instance: the entries are in the bucket
	defer b.Close()
	resp, err = http.Get(b.URL + "/api/entries")
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	json.NewDecoder(resp.Body).Decode(&es)
	if len(es) != 2 || es[0].Name != "ada" || es[1].Name != "bob" {
		t.Fatalf("entries through a second instance: %+v", es)
	}
	resp, _ = http.Get(b.URL + "/")
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), "first &lt;b&gt;") || !strings.Contains(string(page), "<b>bob</b>: second") {
		t.Fatalf("page:\n%s", page)
	}
}

// The directory store (--data, a volume on a VM): entries written by one
// instance are read by a second one on the same directory, oldest first;
// nothing half-written is left; a fresh directory holds no entries.
func TestGuestbookKeepsEntriesInADirectory(t *testing.T) {
	dir := t.TempDir()
	newApp := func(d string) *httptest.Server {
		return httptest.NewServer((&app{store: &dirStore{dir: d}, host: "vm", storage: "dir"}).routes())
	}
	a := newApp(dir)
	defer a.Close()
	for _, body := range []string{`{"name":"ada","message":"one"}`, `{"name":"bob","message":"two"}`} {
		resp, err := http.Post(a.URL+"/api/entries", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("post %s: %v %v", body, resp, err)
		}
	}
	entries := func(url string) []Entry {
		resp, err := http.Get(url + "/api/entries")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var es []Entry
		json.NewDecoder(resp.Body).Decode(&es)
		return es
	}
	// A client's own ID makes a retried write idempotent; a bad one is
	// refused.
	for i := 0; i < 2; i++ {
		resp, err := http.Post(a.URL+"/api/entries", "application/json", strings.NewReader(`{"id":"zz-retried","name":"cy","message":"once"}`))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("post with an id, attempt %d: %v %v", i+1, resp, err)
		}
	}
	if resp, _ := http.Post(a.URL+"/api/entries", "application/json", strings.NewReader(`{"id":"../x","name":"cy","message":"x"}`)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad id: %d, want 400", resp.StatusCode)
	}
	b := newApp(dir)
	defer b.Close()
	if es := entries(b.URL); len(es) != 3 || es[0].Name != "ada" || es[1].Name != "bob" || es[2].ID != "zz-retried" {
		t.Fatalf("entries through a second instance: %+v", es)
	}
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if strings.HasPrefix(f.Name(), ".") {
			t.Errorf("left behind: %s", f.Name())
		}
	}
	c := newApp(t.TempDir())
	defer c.Close()
	if es := entries(c.URL); len(es) != 0 {
		t.Fatalf("a fresh directory has entries: %+v", es)
	}
}
