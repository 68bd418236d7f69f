package lanes

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

// A lane of its own that passes or fails, to test the aggregation alone.
func laneThat(name string, err error) member {
	return member{name, func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
		return Execute(ctx, cfg, Spec{Name: name}, func(ctx context.Context, r *Run) error {
			return r.Step(ctx, "", "work", func(context.Context) error { return err })
		})
	}}
}

// An aggregate passes only if every member ran and passed: a member
// without an implementation makes it incomplete (status, exit code,
// JUnit count, reason naming it), a failed member fails it.
func TestAggregateStatus(t *testing.T) {
	cases := []struct {
		name    string
		members []member
		status  ultracloud.Status
		exit    int
		skipped int
		reason  string
	}{
		{"all pass", []member{laneThat("a", nil), laneThat("b", nil)}, ultracloud.StatusPass, ExitPass, 0, ""},
		{"one not implemented", []member{laneThat("a", nil), {name: "missing"}}, ultracloud.StatusIncomplete, ExitIncomplete, 1, "missing"},
		{"one fails", []member{laneThat("a", errors.New("broken on purpose")), laneThat("b", nil), {name: "missing"}}, ultracloud.StatusFail, ExitFail, 1, "members failed: [a]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := ultracloud.RunConfig{WorkDir: t.TempDir()}
			r, err := aggregate(context.Background(), cfg, "agg", c.members)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != c.status || ExitCode(r) != c.exit || !strings.Contains(r.Reason, c.reason) {
				t.Fatalf("status %s exit %d reason %q; want %s %d %q", r.Status, ExitCode(r), r.Reason, c.status, c.exit, c.reason)
			}
			if j := r.JUnit(); j.Skipped != c.skipped {
				t.Fatalf("JUnit skipped %d, want %d", j.Skipped, c.skipped)
			}
		})
	}
}
