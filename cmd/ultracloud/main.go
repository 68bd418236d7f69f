// Command ultracloud is the testkit's CLI: it lists the canonical profiles,
// topologies and lanes, reports the host preflight, and runs lanes the way
// `nix run ./nix/test-cluster#cluster -- <verb>` does.
//
// Exit codes: 0 success, 1 a lane or check failed, 2 bad usage or the host
// cannot run what was asked, 3 a lane incomplete (steps skipped).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
	// quiet: the command already said why (a lane's summary).
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if !ee.quiet {
			fmt.Fprintln(os.Stderr, "ultracloud:", err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "ultracloud:", err)
	os.Exit(2)
}
