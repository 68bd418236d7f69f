package lanes

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, []string{"a", "b"}, slog.New(slog.DiscardHandler))
	p.set("a", "booting")
	p.set("a", "booting") // unchanged: no new line
	p.set("b", "waiting for plan-fetched")
	p.close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "a") || !strings.HasSuffix(lines[1], "waiting for plan-fetched") {
		t.Fatalf("%q", buf.String())
	}
}
