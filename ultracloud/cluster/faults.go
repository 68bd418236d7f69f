package cluster

import (
	"context"
	"fmt"
	"strings"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Kill ends node's QEMU with SIGKILL: the power cord pulled.
func (c *Cluster) Kill(ctx context.Context, node string) error {
	m, err := c.Node(node)
	if err != nil {
		return err
	}
	if err := m.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", node, err)
	}
	c.event(node, "kill", "SIGKILL to QEMU")
	return nil
}

// Restart boots node again from its disks (killing it first if it still
// runs); it returns once the new machine runs.
func (c *Cluster) Restart(ctx context.Context, node string) (*vm.Machine, error) {
	if m, err := c.Node(node); err == nil && !m.Exited() {
		m.Close()
	}
	m, err := c.Boot(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("restart %s: %w", node, err)
	}
	c.event(node, "restart", "booted again from its disks")
	return m, nil
}

// Pause stops node's vCPUs (QMP stop); its network and disks stay.
func (c *Cluster) Pause(ctx context.Context, node string) error {
	return c.qmp(ctx, node, "pause", "vCPUs stopped", func(m *vm.Machine) error { return m.QMP().Pause(ctx) })
}

// Resume continues a paused node.
func (c *Cluster) Resume(ctx context.Context, node string) error {
	return c.qmp(ctx, node, "resume", "vCPUs running", func(m *vm.Machine) error { return m.QMP().Resume(ctx) })
}

// LinkDown takes node's NIC on network down (QMP set_link): the guest sees
// the carrier drop.
func (c *Cluster) LinkDown(ctx context.Context, node, network string) error {
	return c.qmp(ctx, node, "link-down", network, func(m *vm.Machine) error { return m.QMP().SetLink(ctx, c.nicID(m, network), false) })
}

// LinkUp brings node's NIC on network back.
func (c *Cluster) LinkUp(ctx context.Context, node, network string) error {
	return c.qmp(ctx, node, "link-up", network, func(m *vm.Machine) error { return m.QMP().SetLink(ctx, c.nicID(m, network), true) })
}

func (c *Cluster) nicID(m *vm.Machine, network string) string {
	for _, n := range m.Config().NICs {
		if n.ID == network || strings.HasPrefix(n.ID, network) {
			return n.ID
		}
	}
	return network
}

func (c *Cluster) qmp(ctx context.Context, node, name, detail string, f func(*vm.Machine) error) error {
	m, err := c.Node(node)
	if err != nil {
		return err
	}
	if err := f(m); err != nil {
		return fmt.Errorf("%s %s: %w", name, node, err)
	}
	c.event(node, name, detail)
	return nil
}

// Partition splits the nodes into groups on every VLAN network: frames
// pass only within a group; nodes in no group are cut off.
func (c *Cluster) Partition(groups ...[]string) error {
	for _, g := range groups {
		for _, n := range g {
			if _, ok := c.topo.Node(n); !ok {
				return c.unknown(n)
			}
		}
	}
	c.mu.Lock()
	sws := c.switches
	c.mu.Unlock()
	for name, sw := range sws {
		if err := sw.Partition(groups...); err != nil {
			return fmt.Errorf("partition %s: %w", name, err)
		}
	}
	c.event("", "partition", fmt.Sprint(groups))
	return nil
}

// Heal removes the partition on every VLAN network.
func (c *Cluster) Heal() {
	c.mu.Lock()
	sws := c.switches
	c.mu.Unlock()
	for _, sw := range sws {
		sw.Heal()
	}
	c.event("", "heal", "all nodes reach each other")
}

// DiskErrors makes I/O of kind op ("read", "write" or "flush") on node's
// disk fail with errno in the guest. QEMU fixes blkdebug rules at boot, so
// the node is restarted with the rule (its disks are kept); ClearDiskErrors
// restarts it without.
func (c *Cluster) DiskErrors(ctx context.Context, node, disk, op string, errno int) (*vm.Machine, error) {
	c.mu.Lock()
	if c.faults[node] == nil {
		c.faults[node] = map[string]*vm.DiskFault{}
	}
	c.faults[node][disk] = &vm.DiskFault{Op: op, Errno: errno, Sector: -1}
	c.mu.Unlock()
	m, err := c.Restart(ctx, node)
	if err == nil {
		c.event(node, "disk-errors", fmt.Sprintf("%s on %s: errno %d", op, disk, errno))
	}
	return m, err
}

// ClearDiskErrors restarts node without disk fault rules.
func (c *Cluster) ClearDiskErrors(ctx context.Context, node string) (*vm.Machine, error) {
	c.mu.Lock()
	delete(c.faults, node)
	c.mu.Unlock()
	m, err := c.Restart(ctx, node)
	if err == nil {
		c.event(node, "disk-errors-cleared", "")
	}
	return m, err
}
