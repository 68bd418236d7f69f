package lanes

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// Timing summarises where a lane's time went.
type Timing struct {
	Wall time.Duration
	// Critical is each node's critical path: the sum of its steps.
	Critical map[string]time.Duration
	// Longest is the longest critical path.
	Longest time.Duration
	// Overhead is Wall − Longest: time spent outside any node's path
	// (media, setup, waiting on the slower node, verification, teardown).
	Overhead time.Duration
}

// Ratio is Overhead / Wall.
func (t Timing) Ratio() float64 {
	if t.Wall <= 0 {
		return 0
	}
	return float64(t.Overhead) / float64(t.Wall)
}

// TimingOf computes a report's timing.
func TimingOf(r *ultracloud.Report) Timing {
	t := Timing{Wall: r.Finished.Sub(r.Started), Critical: map[string]time.Duration{}}
	for _, s := range r.Steps {
		if s.Node != "" {
			t.Critical[s.Node] += s.Duration()
		}
	}
	for _, d := range t.Critical {
		t.Longest = max(t.Longest, d)
	}
	t.Overhead = t.Wall - t.Longest
	return t
}

func (t Timing) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wall time              %v\n", t.Wall.Round(time.Millisecond))
	var nodes []string
	for n := range t.Critical {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(&b, "critical path %-30s %v\n", n, t.Critical[n].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "harness overhead       %v (%.1f%% of wall)\n", t.Overhead.Round(time.Millisecond), 100*t.Ratio())
	return b.String()
}
