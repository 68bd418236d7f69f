package vm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
)

// crashPatterns make every console wait fail at once: the guest is not going
// to print what the caller waits for.
var crashPatterns = []*regexp.Regexp{
	regexp.MustCompile(`Kernel panic - not syncing`),
	regexp.MustCompile(`\bOops(: |\[)`),
	regexp.MustCompile(`^panic: |goroutine \d+ \[running\]:`),
	regexp.MustCompile(`ultracloud-guest: phase=fatal\b`),
}

// maxConsoleLines bounds the in-memory history; the log file keeps all.
const maxConsoleLines = 50000

// Console is a machine's serial console: every line goes to a log file and
// to an in-memory history that waits search.
type Console struct {
	mu      sync.Mutex
	lines   []string
	dropped int // lines dropped from the front of lines
	crash   string
	changed chan struct{}
	closed  bool
	logPath string
}

func newConsole(logPath string) *Console {
	return &Console{changed: make(chan struct{}), logPath: logPath}
}

// LogPath is the file holding the whole console output.
func (c *Console) LogPath() string { return c.logPath }

// pump reads r until EOF, teeing lines to the log file and echo.
func (c *Console) pump(r io.Reader, echo func(string)) {
	f, _ := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	defer func() {
		if f != nil {
			f.Close()
		}
		c.mu.Lock()
		c.closed = true
		close(c.changed)
		c.mu.Unlock()
	}()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if f != nil {
				f.WriteString(line)
			}
			line = strings.TrimRight(line, "\r\n")
			if echo != nil {
				echo(line)
			}
			c.add(line)
		}
		if err != nil {
			return
		}
	}
}

func (c *Console) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, line)
	if len(c.lines) > maxConsoleLines {
		n := len(c.lines) - maxConsoleLines
		c.lines = c.lines[n:]
		c.dropped += n
	}
	if c.crash == "" {
		for _, re := range crashPatterns {
			if re.MatchString(line) {
				c.crash = line
				break
			}
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// Len is the number of lines seen so far; pass it to WaitFrom to match only
// later lines.
func (c *Console) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped + len(c.lines)
}

// Tail returns the last n lines.
func (c *Console) Tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines[max(0, len(c.lines)-n):]...)
}

// Crash returns the console line that showed a crash, if any.
func (c *Console) Crash() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crash
}

// Wait returns the first line since boot that matches re.
func (c *Console) Wait(ctx context.Context, re *regexp.Regexp) (string, error) {
	return c.WaitFrom(ctx, 0, re)
}

// neverMatches matches no line.
var neverMatches = regexp.MustCompile(`[^\s\S]`)

// WaitDeath returns when the machine dies: ErrGuestCrashed when the console
// shows a crash, ErrExited when it closed (QEMU ended); ctx's error when ctx
// ends first.
func (c *Console) WaitDeath(ctx context.Context) error {
	_, err := c.WaitFrom(ctx, 0, neverMatches)
	return err
}

// WaitFrom returns the first line at or after position from (see Len) that
// matches re. It fails at once with ErrGuestCrashed when the console shows
// a crash, and with ErrExited when the console closed (QEMU ended).
func (c *Console) WaitFrom(ctx context.Context, from int, re *regexp.Regexp) (string, error) {
	next := from
	for {
		c.mu.Lock()
		start := max(next-c.dropped, 0)
		for i := start; i < len(c.lines); i++ {
			if re.MatchString(c.lines[i]) {
				line := c.lines[i]
				c.mu.Unlock()
				return line, nil
			}
		}
		next = c.dropped + len(c.lines)
		crash, closed, changed := c.crash, c.closed, c.changed
		c.mu.Unlock()
		if crash != "" {
			return "", fmt.Errorf("%w while waiting for /%s/: %s", ErrGuestCrashed, re, crash)
		}
		if closed {
			return "", fmt.Errorf("%w while waiting for /%s/ on the console", ErrExited, re)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for /%s/ on the console: %w", re, ctx.Err())
		case <-changed:
		}
	}
}
