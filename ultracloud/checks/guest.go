package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// ErrNotYet: a single attempt found the condition not (yet) holding.
var ErrNotYet = errors.New("not yet")

// UnitActive holds when the systemd unit is active in the guest, with the
// NixOS driver's wait_for_unit semantics: a failed unit, or an inactive one
// with no pending jobs, fails permanently (Eventually stops at once).
type UnitActive struct {
	M    *vm.Machine
	Unit string
}

func (c UnitActive) String() string { return c.M.Name() + ": unit " + c.Unit + " active" }

// Machines implements OnMachines.
func (c UnitActive) Machines() []*vm.Machine { return []*vm.Machine{c.M} }

// Run implements Check.
func (c UnitActive) Run(ctx context.Context) error {
	ok, err := c.M.Shell().UnitActive(ctx, c.Unit)
	if err != nil {
		if errors.Is(err, vm.ErrUnitFailed) {
			if st, _ := c.M.Shell().Succeed(ctx, "systemctl status "+c.Unit+" 2>&1 || true"); strings.TrimSpace(st) != "" {
				err = fmt.Errorf("%w\n%s", err, strings.TrimSpace(st))
			}
		}
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is not active", ErrNotYet, c.Unit)
	}
	return nil
}

// Command holds when the shell command exits 0 in the guest.
type Command struct {
	M   *vm.Machine
	Cmd string
}

func (c Command) String() string { return c.M.Name() + ": " + c.Cmd }

// Machines implements OnMachines.
func (c Command) Machines() []*vm.Machine { return []*vm.Machine{c.M} }

// Run implements Check.
func (c Command) Run(ctx context.Context) error {
	_, err := c.M.Shell().Succeed(ctx, c.Cmd)
	return err
}

// GuestHTTP fetches URL from inside the guest (busybox wget) and holds on a
// 2xx answer whose body contains BodyContains (if set).
type GuestHTTP struct {
	M            *vm.Machine
	URL          string
	BodyContains string
}

func (c GuestHTTP) String() string { return c.M.Name() + ": GET " + c.URL }

// Machines implements OnMachines.
func (c GuestHTTP) Machines() []*vm.Machine { return []*vm.Machine{c.M} }

// Run implements Check.
func (c GuestHTTP) Run(ctx context.Context) error {
	body, err := c.M.Shell().Succeed(ctx, "wget -qO- "+shellWord(c.URL))
	if err != nil {
		return err
	}
	if !strings.Contains(body, c.BodyContains) {
		return fmt.Errorf("%w: body %q lacks %q", ErrNotYet, truncate(body, 200), c.BodyContains)
	}
	return nil
}

// GuestPort holds when something accepts TCP connections on Addr:Port in
// the guest (`nc -z`, as the driver's wait_for_open_port; IPv6 too).
type GuestPort struct {
	M    *vm.Machine
	Addr string // default 127.0.0.1
	Port int
}

func (c GuestPort) String() string {
	return fmt.Sprintf("%s: port %s:%d open", c.M.Name(), c.addr(), c.Port)
}

func (c GuestPort) addr() string {
	if c.Addr == "" {
		return "127.0.0.1"
	}
	return c.Addr
}

// Machines implements OnMachines.
func (c GuestPort) Machines() []*vm.Machine { return []*vm.Machine{c.M} }

// Run implements Check.
func (c GuestPort) Run(ctx context.Context) error {
	_, err := c.M.Shell().Succeed(ctx, fmt.Sprintf("nc -z %s %d", shellWord(c.addr()), c.Port))
	return err
}

// Probe turns a component's readiness probe (data in the vocabulary) into
// a check on m; a zero probe always holds.
func Probe(m *vm.Machine, p ultracloud.Probe) Check {
	switch {
	case p.Command != "":
		return Command{M: m, Cmd: p.Command}
	case p.HTTP != "":
		return GuestHTTP{M: m, URL: p.HTTP}
	}
	return Func{Name: m.Name() + ": no probe", F: func(context.Context) error { return nil }}
}

func shellWord(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
