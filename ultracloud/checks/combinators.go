package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// ErrPermanent marks a failure that retrying cannot fix (a failed unit, a
// node that reported failed, a dead machine): Eventually returns it at once.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that Eventually stops retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// isPermanent: marked permanent, or a machine that cannot answer any more.
func isPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, vm.ErrExited) || errors.Is(err, vm.ErrGuestCrashed) ||
		errors.Is(err, vm.ErrUnitFailed) || errors.Is(err, vm.ErrUnitInactive)
}

// OnMachines is implemented by checks that run on machines; Eventually
// watches those machines and fails at once when one dies.
type OnMachines interface {
	Machines() []*vm.Machine
}

func machinesOf(cs ...Check) []*vm.Machine {
	var out []*vm.Machine
	for _, c := range cs {
		if om, ok := c.(OnMachines); ok {
			out = append(out, om.Machines()...)
		}
	}
	return out
}

// all and any are the combinators' types.
type all []Check
type anyOf []Check

// All holds when every check holds; it runs them in order and reports the
// first failure.
func All(cs ...Check) Check { return all(cs) }

func (a all) String() string { return joinNames(a, " and ") }

// Run implements Check.
func (a all) Run(ctx context.Context) error {
	for _, c := range a {
		if err := c.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}

// Machines implements OnMachines.
func (a all) Machines() []*vm.Machine { return machinesOf(a...) }

// Any holds when at least one check holds; its error lists every failure.
// It is permanent only when every failure is.
func Any(cs ...Check) Check { return anyOf(cs) }

func (a anyOf) String() string { return joinNames(a, " or ") }

// Run implements Check.
func (a anyOf) Run(ctx context.Context) error {
	if len(a) == 0 {
		return Permanent(errors.New("Any of no checks never holds"))
	}
	var errs []error
	permanent := true
	for _, c := range a {
		err := c.Run(ctx)
		if err == nil {
			return nil
		}
		permanent = permanent && isPermanent(err)
		errs = append(errs, fmt.Errorf("%s: %w", c, err))
	}
	err := errors.Join(errs...)
	if permanent && len(errs) > 0 {
		return Permanent(err)
	}
	// Some member may still come to hold: not permanent, whatever one
	// member's error wraps.
	return fmt.Errorf("%w: %s", ErrNotYet, err.Error())
}

// Machines implements OnMachines.
func (a anyOf) Machines() []*vm.Machine { return machinesOf(a...) }

func joinNames(cs []Check, sep string) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.String()
	}
	return strings.Join(names, sep)
}

// eventually is Eventually's check.
type eventually struct {
	c                 Check
	interval, timeout time.Duration
}

// Eventually retries c every interval until it holds, for at most timeout
// (0: until ctx ends). It fails at once, without waiting out the timeout,
// when c fails permanently (ErrPermanent, a failed or inactive unit) or a
// machine c runs on dies (QEMU exited, a kernel panic or Oops on its
// console): the error then carries the machine's console tail. Each attempt
// is bounded by what is left of the timeout.
func Eventually(c Check, interval, timeout time.Duration) Check {
	if interval <= 0 {
		interval = time.Second
	}
	return eventually{c, interval, timeout}
}

func (e eventually) String() string { return e.c.String() }

// Machines implements OnMachines.
func (e eventually) Machines() []*vm.Machine { return machinesOf(e.c) }

// Run implements Check.
func (e eventually) Run(ctx context.Context) error {
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	// A machine's death cancels the attempt in flight (a check may block,
	// e.g. waiting on a server's events) with the death as the cause.
	wctx, cancelW := context.WithCancelCause(ctx)
	defer cancelW(nil)
	for _, m := range machinesOf(e.c) {
		go func() {
			err := m.Console().WaitDeath(wctx)
			if wctx.Err() == nil {
				cancelW(Permanent(fmt.Errorf("machine %s died: %w%s", m.Name(), err, m.Describe())))
			}
		}()
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := e.c.Run(wctx)
		if err == nil {
			return nil
		}
		if cause := context.Cause(wctx); cause != nil && ctx.Err() == nil && isPermanent(cause) {
			return cause
		}
		if isPermanent(err) {
			return err
		}
		select {
		case <-wctx.Done():
			if cause := context.Cause(wctx); ctx.Err() == nil && isPermanent(cause) {
				return cause
			}
			return fmt.Errorf("not within %s (%d attempts): %w; last: %w", time.Since(start).Round(time.Millisecond), attempt, ctx.Err(), err)
		case <-time.After(e.interval):
		}
	}
}

// watching is Watching's check.
type watching struct {
	Check
	ms []*vm.Machine
}

// Watching makes Eventually watch ms while it retries c: a check that does
// not run on a machine itself (a phone-home phase, a host-side HTTP check)
// still fails at once when a machine it depends on dies.
func Watching(c Check, ms ...*vm.Machine) Check { return watching{c, ms} }

// Machines implements OnMachines.
func (w watching) Machines() []*vm.Machine { return append(machinesOf(w.Check), w.ms...) }
