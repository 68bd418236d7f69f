package vm

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Waits fail at once when the console shows a crash, and when it closes.
func TestConsoleFailsFast(t *testing.T) {
	cases := []struct {
		line string
		want error
	}{
		{"[    1.2] Kernel panic - not syncing: Attempted to kill init!", ErrGuestCrashed},
		{"[    3.4] Oops: 0000 [#1] PREEMPT SMP NOPTI", ErrGuestCrashed},
		{"panic: runtime error: index out of range", ErrGuestCrashed},
		{"goroutine 1 [running]:", ErrGuestCrashed},
		{"ultracloud-guest: phase=fatal role=shell reason=x", ErrGuestCrashed},
		{"an ordinary line", ErrExited}, // then the console closes
	}
	for _, c := range cases {
		pr, pw := io.Pipe()
		con := newConsole(filepath.Join(t.TempDir(), "console.log"))
		go con.pump(pr, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errc := make(chan error, 1)
		go func() { _, err := con.Wait(ctx, regexp.MustCompile("never printed")); errc <- err }()
		io.WriteString(pw, c.line+"\n")
		if c.want == ErrExited {
			pw.Close()
		}
		t0 := time.Now()
		err := <-errc
		cancel()
		pw.Close()
		if !errors.Is(err, c.want) || time.Since(t0) > time.Second {
			t.Errorf("%q: %v after %v, want %v at once", c.line, err, time.Since(t0), c.want)
		}
		if c.want == ErrGuestCrashed && !strings.Contains(err.Error(), strings.TrimSpace(c.line)) {
			t.Errorf("error does not show the crash line: %v", err)
		}
	}
}

// WaitFrom sees only lines after the mark.
func TestConsoleWaitFrom(t *testing.T) {
	con := newConsole(filepath.Join(t.TempDir(), "c.log"))
	con.add("ready 1")
	mark := con.Len()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := con.WaitFrom(ctx, mark, regexp.MustCompile("ready")); err == nil {
		t.Fatal("matched a line before the mark")
	}
	con.add("ready 2")
	line, err := con.WaitFrom(context.Background(), mark, regexp.MustCompile("ready"))
	if err != nil || line != "ready 2" {
		t.Fatalf("%q %v", line, err)
	}
}
