package lanes

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows each node's current phase: a live line per node on a
// terminal (mpb), a plain timestamped line per change on any other writer,
// and log lines when there is no writer.
type progress struct {
	log   *slog.Logger
	plain io.Writer
	start time.Time
	mu    sync.Mutex
	cur   map[string]string
	p     *mpb.Progress
	bars  map[string]*mpb.Bar
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgress(w io.Writer, nodes []string, log *slog.Logger) *progress {
	pr := &progress{log: log, cur: map[string]string{}, bars: map[string]*mpb.Bar{}, start: time.Now()}
	if w == nil {
		return pr
	}
	if !isTerminal(w) {
		pr.plain = w
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond))
	start := time.Now()
	for _, n := range nodes {
		pr.bars[n] = pr.p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name(n, decor.WC{W: len(n) + 1, C: decor.DindentRight})),
			mpb.AppendDecorators(
				decor.Any(func(decor.Statistics) string { return time.Since(start).Round(time.Second).String() }, decor.WC{W: 6}),
				decor.Any(func(decor.Statistics) string { return " " + pr.get(n) }),
			))
	}
	return pr
}

func (p *progress) get(n string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur[n]
}

func (p *progress) set(node, what string) {
	p.mu.Lock()
	changed := p.cur[node] != what
	p.cur[node] = what
	p.mu.Unlock()
	switch {
	case !changed || p.p != nil:
	case p.plain != nil:
		fmt.Fprintf(p.plain, "%7s  %-30s %s\n", time.Since(p.start).Round(time.Second), node, what)
	default:
		p.log.Info("lane progress", "node", node, "now", what)
	}
}

// line prints a lasting line in every mode: above the live bars on a
// terminal, as a plain timestamped line elsewhere, as a log line without a
// writer.
func (p *progress) line(node, what string) {
	switch {
	case p.p != nil:
		fmt.Fprintf(p.p, "%7s  %-30s %s\n", time.Since(p.start).Round(time.Second), node, what)
	case p.plain != nil:
		fmt.Fprintf(p.plain, "%7s  %-30s %s\n", time.Since(p.start).Round(time.Second), node, what)
	default:
		p.log.Info("lane progress", "node", node, "done", what)
	}
}

func (p *progress) close() {
	if p.p == nil {
		return
	}
	for _, b := range p.bars {
		b.SetTotal(-1, true)
	}
	p.p.Wait()
}
