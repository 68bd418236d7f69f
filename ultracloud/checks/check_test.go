package checks

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunFailFirst(t *testing.T) {
	var ran atomic.Int32
	slow := func(name string) Check {
		return Func{Name: name, F: func(ctx context.Context) error {
			ran.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
				return nil
			}
		}}
	}
	bad := Func{Name: "bad", F: func(context.Context) error { return errors.New("broken on purpose") }}
	t0 := time.Now()
	res, err := RunFailFirst(context.Background(), 2, slow("s1"), bad, slow("s2"), slow("s3"))
	if err == nil || !strings.Contains(err.Error(), "bad: broken on purpose") {
		t.Fatalf("%v", err)
	}
	if time.Since(t0) > 2*time.Second {
		t.Fatal("fail-first did not cancel the slow checks")
	}
	cancelled := 0
	for _, r := range res {
		if errors.Is(r.Err, ErrCancelled) {
			cancelled++
		}
	}
	if cancelled != 3 || res[1].Err == nil || errors.Is(res[1].Err, ErrCancelled) {
		t.Fatalf("results %+v", res)
	}
	ok, err := RunFailFirst(context.Background(), 0, Func{Name: "a", F: func(context.Context) error { return nil }})
	if err != nil || ok[0].Err != nil {
		t.Fatal(err)
	}
}
