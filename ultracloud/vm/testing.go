package vm

import (
	"context"
	"os"
	"testing"
	"time"
)

// StartT starts a machine for a test: its state lives in t.TempDir(), it is
// killed in t.Cleanup, and when the test failed the exact QEMU command line
// and the console tail are logged for reproduction. With -v (or
// ULTRACLOUD_CONSOLE=1) console lines are logged as they arrive.
func StartT(t testing.TB, cfg Config) *Machine {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.ConsoleEcho == nil && (testing.Verbose() || os.Getenv("ULTRACLOUD_CONSOLE") == "1") {
		name := cfg.Name
		cfg.ConsoleEcho = func(line string) { t.Logf("[%s] %s", name, line) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("machine %s: reproduce with:\n%s%s", m.Name(), m.CommandLine(), m.Describe())
		}
		// Stop echoing before the test ends: logging after it panics.
		m.Close()
	})
	return m
}
