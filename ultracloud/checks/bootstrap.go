package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/image"
)

// Phase holds when Node has reported Phase (or a later one) to Server in
// this run; a node that reported failed fails permanently, with its reason.
// Event, when set, receives the phase's event (its time marks the step
// boundary in reports).
type Phase struct {
	Server *deployer.PhoneHomeServer
	Node   string
	Phase  bootstrap.Phase
	Event  *bootstrap.PhaseEvent
}

func (c Phase) String() string { return c.Node + " reaches " + string(c.Phase) }

// Run implements Check: it waits on the server's events (never polls), so
// inside Eventually it returns as soon as the phase is reported.
func (c Phase) Run(ctx context.Context) error {
	ev, err := c.Server.WaitPhase(ctx, c.Node, c.Phase)
	if errors.Is(err, bootstrap.ErrNodeFailed) {
		return Permanent(err)
	}
	if err != nil {
		return err
	}
	if c.Event != nil {
		*c.Event = ev
	}
	return nil
}

// DiskFile holds when File exists on partition Partition of the disk image
// Disk (read in-process; the machine must be stopped) and contains
// Contains (if set).
type DiskFile struct {
	Disk      string
	Partition int
	File      string
	Contains  string
}

func (c DiskFile) String() string {
	return fmt.Sprintf("%s partition %d has %s", c.Disk, c.Partition, c.File)
}

// Run implements Check.
func (c DiskFile) Run(context.Context) error {
	img, err := image.OpenDisk(c.Disk)
	if err != nil {
		return Permanent(err)
	}
	defer img.Close()
	data, err := img.ReadFile(c.Partition, c.File)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotYet, err)
	}
	if !strings.Contains(string(data), c.Contains) {
		return fmt.Errorf("%s lacks %q:\n%s", c.File, c.Contains, truncate(string(data), 400))
	}
	return nil
}
