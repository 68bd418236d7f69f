package vm

import (
	"context"
	"fmt"
)

// The fault API. A machine can lose power (Kill), freeze (Pause/Resume),
// lose a link (LinkDown/LinkUp), and have a disk fail (DiskConfig.Fault,
// fixed at boot). Network partitions are made on the Switch the machines
// share (Switch.Partition, Heal, Cut, Restore).

// Pause freezes the guest's CPUs; its clock and network stop with it.
func (m *Machine) Pause(ctx context.Context) error {
	if err := m.qmp.Pause(ctx); err != nil {
		return fmt.Errorf("%s: pause: %w", m.cfg.Name, err)
	}
	return nil
}

// Resume continues a paused guest.
func (m *Machine) Resume(ctx context.Context) error {
	if err := m.qmp.Resume(ctx); err != nil {
		return fmt.Errorf("%s: resume: %w", m.cfg.Name, err)
	}
	return nil
}

// LinkDown takes the NIC with device id down (the guest sees carrier loss).
func (m *Machine) LinkDown(ctx context.Context, nicID string) error {
	return m.setLink(ctx, nicID, false)
}

// LinkUp restores a NIC taken down by LinkDown.
func (m *Machine) LinkUp(ctx context.Context, nicID string) error {
	return m.setLink(ctx, nicID, true)
}

func (m *Machine) setLink(ctx context.Context, id string, up bool) error {
	known := false
	for _, n := range m.cfg.NICs {
		known = known || n.ID == id
	}
	if !known {
		return fmt.Errorf("%w: %s has no NIC %q", ErrConfig, m.cfg.Name, id)
	}
	if err := m.qmp.SetLink(ctx, id, up); err != nil {
		return fmt.Errorf("%s: set_link %s up=%v: %w", m.cfg.Name, id, up, err)
	}
	return nil
}
