// Package checks holds Check, the unit of verification lanes compose, its
// combinators, and concrete checks (Nix evaluation and build guards, …).
package checks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// ErrCancelled marks a check that did not finish because another failed
// first (fail-first).
var ErrCancelled = errors.New("cancelled after an earlier failure")

// Check is one verifiable condition.
type Check interface {
	fmt.Stringer
	// Run returns nil when the condition holds.
	Run(ctx context.Context) error
}

// Func adapts a function to a Check.
type Func struct {
	Name string
	F    func(ctx context.Context) error
}

func (f Func) String() string                { return f.Name }
func (f Func) Run(ctx context.Context) error { return f.F(ctx) }

// Result is one check's outcome.
type Result struct {
	Name     string
	Started  time.Time
	Finished time.Time
	// Err is nil for a pass; wraps ErrCancelled for a check stopped by an
	// earlier failure.
	Err error
}

// RunFailFirst runs checks in parallel, at most limit at once (≤ 0: all).
// The first failure cancels the checks still running or waiting; they are
// reported with ErrCancelled. It returns every result, in the order given,
// and the first failure.
func RunFailFirst(ctx context.Context, limit int, cs ...Check) ([]Result, error) {
	g, gctx := errgroup.WithContext(ctx)
	if limit > 0 {
		g.SetLimit(limit)
	}
	results := make([]Result, len(cs))
	var first error
	firstSet := make(chan struct{}, 1)
	for i, c := range cs {
		results[i].Name = c.String()
		g.Go(func() error {
			r := &results[i]
			r.Started = time.Now()
			if gctx.Err() != nil {
				r.Finished, r.Err = r.Started, fmt.Errorf("%s: %w", c, ErrCancelled)
				return nil
			}
			err := c.Run(gctx)
			r.Finished = time.Now()
			if err == nil {
				return nil
			}
			select {
			case firstSet <- struct{}{}:
				r.Err = fmt.Errorf("%s: %w", c, err)
				first = r.Err
				return r.Err // cancels the rest
			default:
				r.Err = fmt.Errorf("%s: %w (%w)", c, ErrCancelled, err)
				return nil
			}
		})
	}
	g.Wait()
	return results, first
}
