package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	os.WriteFile(path, []byte("one\ntwo\nthree\nfour\n"), 0o644)
	for _, tc := range []struct {
		n    int
		want string
	}{{2, "three\nfour\n"}, {0, "one\ntwo\nthree\nfour\n"}, {10, "one\ntwo\nthree\nfour\n"}} {
		var out bytes.Buffer
		if err := tailFile(context.Background(), &out, path, tc.n, false); err != nil || out.String() != tc.want {
			t.Errorf("--lines %d: %q %v", tc.n, out.String(), err)
		}
	}
	if err := tailFile(context.Background(), &bytes.Buffer{}, path+".missing", 1, false); err == nil || !strings.Contains(err.Error(), "never booted") {
		t.Errorf("missing log: %v", err)
	}

	// -f: what is appended later is printed until the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error)
	go func() { done <- tailFile(ctx, &out, path, 1, true) }()
	for end := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "four") && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("five\n")
	f.Close()
	for end := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "five") && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil || out.String() != "four\nfive\n" {
		t.Fatalf("follow: %q %v", out.String(), err)
	}
}
