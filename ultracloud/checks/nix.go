package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrNix: a nix command failed; the error carries its stderr.
var ErrNix = errors.New("nix failed")

// nixArgs make nix work as these hosts need: flakes on, no daemon user
// group, no sandbox, no binary cache (offline).
var nixArgs = []string{
	"--extra-experimental-features", "nix-command flakes",
	"--option", "build-users-group", "",
	"--option", "sandbox", "false",
	"--option", "substituters", "",
}

// NixCommand is the command Nix runs, for callers that stream its output.
func NixCommand(ctx context.Context, nix string, args ...string) *exec.Cmd {
	if nix == "" {
		nix = "nix"
	}
	return exec.CommandContext(ctx, nix, append(slicesClone(nixArgs), args...)...)
}

// Nix runs nix (the binary; "" means "nix" on PATH) with args the way the
// SDK does on these hosts: nix-command and flakes enabled, no build-users
// group, no sandbox, no substituters (offline). It returns stdout; a
// failure wraps ErrNix with the command and its stderr.
func Nix(ctx context.Context, nix string, args ...string) (string, error) {
	return runNix(ctx, nix, args...)
}

func runNix(ctx context.Context, nix string, args ...string) (string, error) {
	if nix == "" {
		nix = "nix"
	}
	cmd := exec.CommandContext(ctx, nix, append(slicesClone(nixArgs), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: nix %s: %v\n%s", ErrNix, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// NixEval evaluates Flake#Attr (`nix eval --no-eval-cache … --raw`). For a
// derivation attribute pass Attr ending in ".drvPath".
type NixEval struct {
	Flake string // e.g. "." or "path:/abs/dir"
	Attr  string
	Nix   string // binary (default nix)
	// JSON prints the value as JSON (--json) instead of --raw.
	JSON bool
	// Apply is a Nix function applied to the value first (--apply).
	Apply string
	// Output receives the evaluated value.
	Output *string
}

func (c NixEval) String() string { return "nix eval " + c.Flake + "#" + c.Attr }

// Run implements Check.
func (c NixEval) Run(ctx context.Context) error {
	args := []string{"eval", "--no-eval-cache", c.Flake + "#" + c.Attr}
	if c.Apply != "" {
		args = append(args, "--apply", c.Apply)
	}
	if c.JSON {
		args = append(args, "--json")
	} else {
		args = append(args, "--raw")
	}
	out, err := runNix(ctx, c.Nix, args...)
	if err == nil && c.Output != nil {
		*c.Output = out
	}
	return err
}

// NixBuild builds Flake#Attr (`nix build --no-link`).
type NixBuild struct {
	Flake string
	Attr  string
	Nix   string
}

func (c NixBuild) String() string { return "nix build " + c.Flake + "#" + c.Attr }

// Run implements Check.
func (c NixBuild) Run(ctx context.Context) error {
	_, err := runNix(ctx, c.Nix, "build", "--no-link", c.Flake+"#"+c.Attr)
	return err
}
