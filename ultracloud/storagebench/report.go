package storagebench

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Report is a bench-storage run's results: the disks of each node and
// object throughput through lightningstor.
type Report struct {
	RunID       string    `json:"runID"`
	Accelerator string    `json:"accelerator"`
	Taken       time.Time `json:"taken"`
	// Disks are each node's results, by node.
	Disks map[string][]Result `json:"disks"`
	// Objects are object store measurements.
	Objects []ObjectResult `json:"objects,omitempty"`
}

// ObjectResult is object put and get throughput: Objects of Size bytes
// put from one node and read back from another.
type ObjectResult struct {
	PutFrom string  `json:"putFrom"`
	GetFrom string  `json:"getFrom"`
	Objects int     `json:"objects"`
	Size    int     `json:"size"`
	PutMBps float64 `json:"putMBps"`
	GetMBps float64 `json:"getMBps"`
	// Rounds is how many put-then-get rounds ran; the figures are their
	// medians.
	Rounds int `json:"rounds,omitempty"`
	// Retries is how many requests of the rounds were retried (a 5xx
	// answer or a failed connection, as S3 SDKs retry); their waits are
	// in the figures.
	Retries int `json:"retries,omitempty"`
}

// Metric is one number of a report and which way is better.
type Metric struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	// Lower is true for latencies (smaller is better).
	Lower bool `json:"lower,omitempty"`
}

// Metrics flattens the report: per node, MB/s of sequential patterns,
// IOPS of random ones, p50 and p99 of fsync; object put and get MB/s. In
// a stable order.
func (r Report) Metrics() []Metric {
	var out []Metric
	for _, node := range slices.Sorted(mapKeys(r.Disks)) {
		for _, res := range r.Disks[node] {
			switch res.Kind {
			case SeqRead, SeqWrite:
				out = append(out, Metric{Name: node + " " + res.Name, Unit: "MB/s", Value: res.MBps})
			case RandRead, RandWrite:
				out = append(out, Metric{Name: node + " " + res.Name, Unit: "IOPS", Value: res.IOPS})
			case Fsync:
				out = append(out, Metric{Name: node + " " + res.Name + " p50", Unit: "ms", Value: res.P50ms, Lower: true},
					Metric{Name: node + " " + res.Name + " p99", Unit: "ms", Value: res.P99ms, Lower: true})
			}
		}
	}
	for _, o := range r.Objects {
		out = append(out, Metric{Name: "object put " + o.PutFrom, Unit: "MB/s", Value: o.PutMBps},
			Metric{Name: "object get " + o.GetFrom, Unit: "MB/s", Value: o.GetMBps})
	}
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Regression is a metric worse than its baseline by more than allowed.
type Regression struct {
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	Base   float64 `json:"base"`
	Now    float64 `json:"now"`
	// Worse is how much worse, as a fraction of the baseline (0.25: 25 %).
	Worse float64 `json:"worse"`
}

func (g Regression) String() string {
	return fmt.Sprintf("%s: %.4g %s, baseline %.4g (%.0f%% worse)", g.Metric, g.Now, g.Unit, g.Base, g.Worse*100)
}

// ErrMissingMetric: the baseline has a metric this run did not measure.
var ErrMissingMetric = errors.New("metric missing")

// Compare returns every metric of cur worse than base's by more than
// maxWorse (0.2: 20 %), worst first; a metric of base that cur lacks is
// an error naming it.
func Compare(base, cur Report, maxWorse float64) ([]Regression, error) {
	now := map[string]Metric{}
	for _, m := range cur.Metrics() {
		now[m.Name] = m
	}
	var out []Regression
	var missing []string
	for _, b := range base.Metrics() {
		m, ok := now[b.Name]
		if !ok {
			missing = append(missing, b.Name)
			continue
		}
		if b.Value <= 0 {
			continue
		}
		worse := (b.Value - m.Value) / b.Value
		if b.Lower {
			worse = (m.Value - b.Value) / b.Value
		}
		if worse > maxWorse {
			out = append(out, Regression{Metric: b.Name, Unit: b.Unit, Base: b.Value, Now: m.Value, Worse: worse})
		}
	}
	slices.SortFunc(out, func(a, b Regression) int { return cmp.Compare(b.Worse, a.Worse) })
	if len(missing) > 0 {
		return out, fmt.Errorf("%w: this run did not measure %s (same topology and nodes as the baseline?)", ErrMissingMetric, strings.Join(missing, ", "))
	}
	return out, nil
}

// Load reads a report written by WriteJSON; the error names the file and
// what is wrong with it.
func Load(path string) (Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Report{}, fmt.Errorf("baseline: %w", err)
	}
	r, err := Parse(raw)
	if err != nil {
		return Report{}, fmt.Errorf("baseline %s: %w", path, err)
	}
	return r, nil
}

// ErrNotReport: bytes that are not a bench-storage report.
var ErrNotReport = errors.New("not a bench-storage report (bench.json of an earlier run)")

// Parse reads a report: JSON with at least one measurement, no negative
// or non-finite numbers.
func Parse(raw []byte) (Report, error) {
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrNotReport, err)
	}
	ms := r.Metrics()
	if len(ms) == 0 {
		return Report{}, fmt.Errorf("%w: it holds no measurements", ErrNotReport)
	}
	for _, m := range ms {
		if m.Value < 0 || m.Value != m.Value || m.Value > 1e15 {
			return Report{}, fmt.Errorf("%w: %s is %v", ErrNotReport, m.Name, m.Value)
		}
	}
	return r, nil
}

// WriteJSON writes the report, indented.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
