package checks_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/photoncloud/testkit/ultracloud/checks"
)

func ExampleRunFailFirst() {
	ok := checks.Func{Name: "ok", F: func(context.Context) error { return nil }}
	bad := checks.Func{Name: "bad", F: func(context.Context) error { return errors.New("broken") }}
	_, err := checks.RunFailFirst(context.Background(), 1, ok, bad)
	fmt.Println(err)
	// Output: bad: broken
}
