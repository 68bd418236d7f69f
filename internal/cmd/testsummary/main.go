// Command testsummary reads `go test -json` on stdin and writes the plain
// go test lines followed by a summary (package times, slowest tests, tests
// cut off, failed tests' last lines): what `make test` pipes its run
// through, so the end of a CI log says what ran, how long, and what failed.
// It exits 1 when a package or test failed.
package main

import (
	"fmt"
	"os"

	"github.com/photoncloud/testkit/internal/testsummary"
)

func main() {
	res, err := testsummary.Summarize(os.Stdin, os.Stdout, testsummary.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if res.FailedPackages > 0 || res.Failed > 0 {
		os.Exit(1)
	}
}
