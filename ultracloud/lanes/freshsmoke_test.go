package lanes

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// Bad input is refused before anything boots.
func TestFreshSmokeRejectsUnknownFault(t *testing.T) {
	_, err := FreshSmoke(context.Background(), ultracloud.RunConfig{WorkDir: t.TempDir()}, FreshSmokeOptions{Faults: []string{"meteor"}})
	if !errors.Is(err, ultracloud.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid naming the known faults", err)
	}
}

// until retries until its bound unless an answer is final (giveUp): then
// it returns that answer at once, wrapped with what it waited for.
func TestUntilGivesUp(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		answer   error
		minTries int
		maxTries int
	}{
		{"retries a passing failure until the bound", boom, 2, 10},
		{"stops at a final answer", giveUp(boom), 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			err := until(t.Context(), "thing", 1200*time.Millisecond, func(context.Context) error { tries++; return tc.answer })
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "thing") {
				t.Fatalf("error %v, want boom wrapped with what", err)
			}
			if tries < tc.minTries || tries > tc.maxTries {
				t.Fatalf("%d tries, want %d-%d", tries, tc.minTries, tc.maxTries)
			}
		})
	}
}

// An attempt cut short by until's bound does not hide the answer before
// it: the error says what the thing last answered.
func TestUntilReportsTheLastAnswer(t *testing.T) {
	boom := errors.New("boom")
	tries := 0
	err := until(t.Context(), "thing", 1500*time.Millisecond, func(ctx context.Context) error {
		tries++
		if tries == 1 {
			return boom
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the last answer (boom)", err)
	}
}

func TestUnitPorts(t *testing.T) {
	for _, c := range []struct {
		out  string
		want map[string]string
	}{
		{"chainfire 18000\niam 18002\n", map[string]string{"chainfire": "18000", "iam": "18002"}},
		{"chainfire 18000\nsshd \n", map[string]string{"chainfire": "18000"}},
		{"x notaport\ny 0\nz 70000\n\n", map[string]string{}},
		{"", map[string]string{}},
	} {
		if got := unitPorts(c.out); !maps.Equal(got, c.want) {
			t.Errorf("unitPorts(%q) = %v, want %v", c.out, got, c.want)
		}
	}
}
