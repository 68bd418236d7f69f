package lanes

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/photoncloud/testkit/ultracloud"
)

// RunOptions is what a lane driver (an example main, the CLI, a Nix check)
// passes to Run.
type RunOptions struct {
	// WorkDir holds the run (default ./ultracloud-work/<lane>).
	WorkDir string
	// JUnitOut, when set, also receives junit.xml (a flake check's $out).
	JUnitOut string
	// Out receives the summary (default os.Stdout).
	Out io.Writer
}

// Exit codes of every lane driver (examples/<lane>, `ultracloud cluster`).
const (
	ExitPass = 0
	// ExitFail: the lane ran and failed.
	ExitFail = 1
	// ExitCouldNotRun: bad flags, preflight refused, the lane could not run.
	ExitCouldNotRun = 2
	// ExitIncomplete: nothing failed but steps or members were skipped;
	// skipped is not passed.
	ExitIncomplete = 3
)

// ExitCode maps a finished report to the driver's exit code.
func ExitCode(r *ultracloud.Report) int {
	switch r.Status {
	case ultracloud.StatusPass:
		return ExitPass
	case ultracloud.StatusIncomplete, ultracloud.StatusSkip:
		return ExitIncomplete
	default:
		return ExitFail
	}
}

// Run runs a registered lane as a driver does and prints where its report
// is. The error is non-nil only when the lane could not run; the report
// says whether it passed.
func Run(ctx context.Context, lane ultracloud.Lane, cfg ultracloud.RunConfig, o RunOptions) (*ultracloud.Report, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = o.WorkDir
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join("ultracloud-work", lane.Name)
	}
	abs, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	cfg.WorkDir = abs
	r, err := lane.Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lane %s: %w", lane.Name, err)
	}
	report := filepath.Join(cfg.WorkDir, "report")
	fmt.Fprintf(o.Out, "\nlane %s: %s in %s; steps: %s (accelerator %s: %s)\n", lane.Name, r.Status,
		r.Finished.Sub(r.Started).Round(1e9), r.Counts(), r.Host.Accelerator, r.Host.AccelReason)
	if r.Status != ultracloud.StatusPass {
		fmt.Fprintf(o.Out, "reason: %s\n", r.Reason)
	}
	fmt.Fprintf(o.Out, "report:   %s\njunit:    %s\n", filepath.Join(report, "report.json"), filepath.Join(report, "junit.xml"))
	if _, err := os.Stat(filepath.Join(report, "timeline.svg")); err == nil {
		fmt.Fprintf(o.Out, "timeline: %s\n", filepath.Join(report, "timeline.svg"))
	}
	if o.JUnitOut != "" {
		if err := os.MkdirAll(o.JUnitOut, 0o755); err != nil {
			return r, err
		}
		f, err := os.Create(filepath.Join(o.JUnitOut, "junit.xml"))
		if err != nil {
			return r, err
		}
		werr := r.WriteJUnit(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return r, werr
		}
		fmt.Fprintf(o.Out, "junit also written to %s\n", filepath.Join(o.JUnitOut, "junit.xml"))
	}
	return r, nil
}
