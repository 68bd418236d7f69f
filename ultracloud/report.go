package ultracloud

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Status is the outcome of a step or a lane.
type Status string

// Outcomes.
const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
	// StatusIncomplete: nothing failed, but some steps were skipped; a lane
	// (or aggregate) with a skipped member is not a pass.
	StatusIncomplete Status = "incomplete"
)

// Artifact is a file a lane kept: a console log, a disk image, a picture.
type Artifact struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Step is one phase or check of a lane, optionally on one node.
type Step struct {
	Name     string    `json:"name"`
	Node     string    `json:"node,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   Status    `json:"status"`
	// Reason says why a step failed or was skipped.
	Reason    string     `json:"reason,omitempty"`
	Artifacts []Artifact `json:"artifacts,omitempty"`
}

// Duration is Finished − Started.
func (s Step) Duration() time.Duration { return s.Finished.Sub(s.Started) }

// Event is a point in a run worth seeing on its timeline: a fault
// injected, its detection, a recovery.
type Event struct {
	At   time.Time `json:"at"`
	Node string    `json:"node,omitempty"`
	Name string    `json:"name"`
	// Detail says more (the fault's parameters, what was observed).
	Detail string `json:"detail,omitempty"`
}

// Report is the result of one lane run. Its methods are safe for concurrent
// use while the lane runs (nodes report steps from their own goroutines).
type Report struct {
	mu sync.Mutex

	Lane string `json:"lane"`
	// RunID names this run; servers and guests of the run carry it, so
	// nothing an earlier run left in the same work dir counts for this one.
	RunID    string    `json:"runID"`
	Topology string    `json:"topology,omitempty"`
	Host     HostEnv   `json:"host"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   Status    `json:"status"`
	// Reason summarises a failure or skip.
	Reason    string     `json:"reason,omitempty"`
	Steps     []Step     `json:"steps"`
	Events    []Event    `json:"events,omitempty"`
	Artifacts []Artifact `json:"artifacts,omitempty"`
}

// NewReport starts a report for lane on host, timed from now, with a new
// run id.
func NewReport(lane string, host HostEnv) *Report {
	now := time.Now()
	return &Report{Lane: lane, RunID: NewRunID(now), Host: host, Started: now, Steps: []Step{}}
}

// NewRunID returns a run id: the UTC time and 48 random bits, unique per
// run and sortable by start.
func NewRunID(at time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// AddStep records a finished step.
func (r *Report) AddStep(s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Steps = append(r.Steps, s)
}

// AddEvent records a point event.
func (r *Report) AddEvent(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Events = append(r.Events, e)
}

// AddArtifact records a lane-level artifact.
func (r *Report) AddArtifact(name, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Artifacts = append(r.Artifacts, Artifact{Name: name, Path: path})
}

// Finish stamps the end time and sets the lane's status: fail if err is
// non-nil or any step failed; skip if every step was skipped; incomplete if
// some were skipped and none failed; else pass. Skipped is never passed.
func (r *Report) Finish(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Finished = time.Now()
	c := r.countsLocked()
	switch {
	case c.Skipped > 0 && c.Skipped == len(r.Steps):
		r.Status = StatusSkip
	case c.Skipped > 0:
		r.Status = StatusIncomplete
		var names []string
		for _, s := range r.Steps {
			if s.Status == StatusSkip {
				names = append(names, stepLabel(s))
			}
		}
		r.Reason = fmt.Sprintf("%d of %d steps skipped: %s", c.Skipped, len(r.Steps), strings.Join(names, ", "))
	default:
		r.Status = StatusPass
	}
	for _, s := range r.Steps {
		if s.Status == StatusFail {
			if r.Status != StatusFail {
				r.Reason = ""
			}
			r.Status = StatusFail
			if r.Reason == "" {
				r.Reason = stepLabel(s) + ": " + s.Reason
			}
		}
	}
	if err != nil {
		r.Status = StatusFail
		r.Reason = err.Error()
	}
}

// Counts is how many steps passed, failed and were skipped.
type Counts struct {
	Passed, Failed, Skipped int
}

// String is the summary line's counts: "2 passed, 0 failed, 3 skipped".
func (c Counts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", c.Passed, c.Failed, c.Skipped)
}

// Counts counts the report's steps by status.
func (r *Report) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countsLocked()
}

func (r *Report) countsLocked() Counts {
	var c Counts
	for _, s := range r.Steps {
		switch s.Status {
		case StatusPass:
			c.Passed++
		case StatusFail:
			c.Failed++
		case StatusSkip:
			c.Skipped++
		}
	}
	return c
}

// Passed reports whether the lane passed.
func (r *Report) Passed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Status == StatusPass
}

func stepLabel(s Step) string {
	if s.Node == "" {
		return s.Name
	}
	return s.Node + "/" + s.Name
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// JUnit XML shapes, as Forgejo, GitHub and Jenkins render them.
type (
	// JUnitSuites is the <testsuites> root.
	JUnitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Skipped  int          `xml:"skipped,attr"`
		Time     float64      `xml:"time,attr"`
		Suites   []JUnitSuite `xml:"testsuite"`
	}
	// JUnitSuite is one <testsuite>: one lane.
	JUnitSuite struct {
		Name       string          `xml:"name,attr"`
		Tests      int             `xml:"tests,attr"`
		Failures   int             `xml:"failures,attr"`
		Skipped    int             `xml:"skipped,attr"`
		Time       float64         `xml:"time,attr"`
		Timestamp  string          `xml:"timestamp,attr"`
		Properties []JUnitProperty `xml:"properties>property"`
		Cases      []JUnitCase     `xml:"testcase"`
	}
	// JUnitProperty is a name/value pair of the suite (accelerator, host…).
	JUnitProperty struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	// JUnitCase is one <testcase>: one step.
	JUnitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      float64       `xml:"time,attr"`
		Failure   *JUnitMessage `xml:"failure,omitempty"`
		Skipped   *JUnitMessage `xml:"skipped,omitempty"`
		SystemOut string        `xml:"system-out,omitempty"`
	}
	// JUnitMessage carries a failure or skip reason.
	JUnitMessage struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
)

// JUnit converts the report: one testsuite for the lane, one testcase per step.
func (r *Report) JUnit() JUnitSuites {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := JUnitSuite{
		Name:      r.Lane,
		Time:      r.Finished.Sub(r.Started).Seconds(),
		Timestamp: r.Started.UTC().Format(time.RFC3339),
		Properties: []JUnitProperty{
			{Name: "accelerator", Value: string(r.Host.Accelerator)},
			{Name: "accelReason", Value: r.Host.AccelReason},
			{Name: "kvmUsable", Value: fmt.Sprint(r.Host.KVMUsable)},
			{Name: "qemu", Value: r.Host.QEMUVersion},
			{Name: "topology", Value: r.Topology},
		},
	}
	for _, st := range r.Steps {
		c := JUnitCase{Name: st.Name, Classname: r.Lane, Time: st.Duration().Seconds()}
		if st.Node != "" {
			c.Classname = r.Lane + "." + st.Node
		}
		for _, a := range st.Artifacts {
			c.SystemOut += fmt.Sprintf("[[ATTACHMENT|%s]]\n", a.Path)
		}
		switch st.Status {
		case StatusFail:
			c.Failure = &JUnitMessage{Message: st.Reason, Text: st.Reason}
			s.Failures++
		case StatusSkip:
			c.Skipped = &JUnitMessage{Message: st.Reason}
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	if r.Status == StatusFail && s.Failures == 0 {
		// The lane failed outside any step (setup, harness): make it visible.
		s.Cases = append(s.Cases, JUnitCase{Name: "lane", Classname: r.Lane,
			Failure: &JUnitMessage{Message: r.Reason, Text: r.Reason}})
		s.Tests++
		s.Failures++
	}
	return JUnitSuites{Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped, Time: s.Time, Suites: []JUnitSuite{s}}
}

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(r.JUnit()); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteFiles writes report.json and junit.xml into dir and returns their paths.
func (r *Report) WriteFiles(dir string) (jsonPath, junitPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("report dir: %w", err)
	}
	jsonPath = filepath.Join(dir, "report.json")
	junitPath = filepath.Join(dir, "junit.xml")
	for _, f := range []struct {
		path  string
		write func(io.Writer) error
	}{{jsonPath, r.WriteJSON}, {junitPath, r.WriteJUnit}} {
		out, err := os.Create(f.path)
		if err != nil {
			return "", "", fmt.Errorf("report: %w", err)
		}
		werr := f.write(out)
		if cerr := out.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return "", "", fmt.Errorf("report %s: %w", f.path, werr)
		}
	}
	return jsonPath, junitPath, nil
}
