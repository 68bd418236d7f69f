package ultracloud

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers can test with errors.Is.
var (
	// ErrUnknownProfile: a profile name that is not canonical.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrUnknownTopology: a topology name that is not canonical.
	ErrUnknownTopology = errors.New("unknown topology")
	// ErrUnknownLane: a lane name that no registry holds.
	ErrUnknownLane = errors.New("unknown lane")
	// ErrInvalid: a value failed validation; the wrapping error lists why.
	ErrInvalid = errors.New("invalid")
)

// FieldError is one validation problem, located by a JSON-style path such as
// "nodes[2].disks[0].sizeBytes".
type FieldError struct {
	// Path locates the offending field.
	Path string
	// Problem says what is wrong and, where it helps, how to fix it.
	Problem string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Problem }

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// ValidationError collects every problem found in one value.
type ValidationError struct {
	// What names the value validated, e.g. `topology "fresh-cluster"`.
	What string
	// Problems lists each problem in the order found.
	Problems []*FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is invalid (%d problem", e.What, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteByte('s')
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes each problem to errors.As.
func (e *ValidationError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// problems accumulates FieldErrors.
type problems struct{ list []*FieldError }

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, &FieldError{Path: path, Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) err(what string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{What: what, Problems: p.list}
}
