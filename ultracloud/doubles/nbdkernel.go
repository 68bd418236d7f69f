package doubles

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ErrNoNBD says this kernel has no NBD client (the nbd module is not
// loaded).
var ErrNoNBD = errors.New("no kernel NBD client (load the nbd module)")

// The kernel NBD client's generic netlink interface (linux/nbd-netlink.h).
const (
	nbdGenlFamily  = "nbd"
	nbdGenlVersion = 1

	nbdCmdConnect    = 1
	nbdCmdDisconnect = 2

	nbdAttrIndex          = 1
	nbdAttrSizeBytes      = 2
	nbdAttrBlockSizeBytes = 3
	nbdAttrServerFlags    = 5
	nbdAttrSockets        = 7
	nbdSockItem           = 1
	nbdSockFD             = 1
)

// NBDDevice is a kernel block device (/dev/nbdN) backed by an NBD export:
// every block I/O on it is an NBD request over the network.
type NBDDevice struct {
	// Index is N of /dev/nbdN.
	Index int
	// Path is /dev/nbdN.
	Path string
	// Size is the export's size in bytes.
	Size int64
}

// AttachNBD connects a free kernel NBD device to export on the NBD server
// at addr (host:port): it negotiates in user space (NBDNegotiate) and
// hands the connected socket to the kernel over netlink, as nbd-client
// does. The device keeps working after this process lets go of it; call
// Detach to disconnect it.
func AttachNBD(ctx context.Context, addr, export string) (*NBDDevice, error) {
	fam, err := netlink.GenlFamilyGet(nbdGenlFamily)
	if err != nil {
		return nil, fmt.Errorf("%w: generic netlink family %q: %w", ErrNoNBD, nbdGenlFamily, err)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nbd server %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := dctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	size, flags, err := NBDNegotiate(conn, export)
	if err != nil {
		return nil, fmt.Errorf("nbd server %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	// The kernel takes its own reference to the socket: a duplicate of
	// the descriptor, in blocking mode (Fd sets it), is what it gets.
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd := f.Fd()

	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	req.AddData(&nl.Genlmsg{Command: nbdCmdConnect, Version: nbdGenlVersion})
	req.AddData(nl.NewRtAttr(nbdAttrSizeBytes, nl.Uint64Attr(size)))
	// 512-byte blocks: a FAT or ext4 made with 512-byte sectors mounts.
	req.AddData(nl.NewRtAttr(nbdAttrBlockSizeBytes, nl.Uint64Attr(512)))
	req.AddData(nl.NewRtAttr(nbdAttrServerFlags, nl.Uint64Attr(uint64(flags))))
	socks := nl.NewRtAttr(nbdAttrSockets|int(nl.NLA_F_NESTED), nil)
	item := socks.AddRtAttr(nbdSockItem|int(nl.NLA_F_NESTED), nil)
	item.AddRtAttr(nbdSockFD, nl.Uint32Attr(uint32(fd)))
	req.AddData(socks)
	msgs, err := req.Execute(unix.NETLINK_GENERIC, fam.ID)
	if err != nil {
		return nil, fmt.Errorf("nbd connect (export %q of %s): %w", export, addr, err)
	}
	index := -1
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			continue
		}
		for _, a := range attrs {
			if a.Attr.Type&nl.NLA_TYPE_MASK == nbdAttrIndex && len(a.Value) >= 4 {
				index = int(nl.NativeEndian().Uint32(a.Value))
			}
		}
	}
	if index < 0 {
		return nil, fmt.Errorf("nbd connect (export %q of %s): the kernel named no device", export, addr)
	}
	dev := &NBDDevice{Index: index, Path: fmt.Sprintf("/dev/nbd%d", index), Size: int64(size)}
	// The device node and its size appear a moment later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, statErr := os.Stat(dev.Path)
		if statErr == nil && dev.sectors() > 0 {
			break
		}
		if time.Now().After(deadline) {
			dev.Detach(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("nbd connect (export %q of %s): %s not ready (%d sectors): %v", export, addr, dev.Path, dev.sectors(), statErr)
		}
	}
	return dev, nil
}

// sectors is the device's size as the kernel reports it.
func (d *NBDDevice) sectors() int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/sys/block/nbd%d/size", d.Index))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return n
}

// Connected tells whether the kernel still has the device connected.
func (d *NBDDevice) Connected() bool {
	_, err := os.Stat(fmt.Sprintf("/sys/block/nbd%d/pid", d.Index))
	return err == nil
}

// Detach flushes the device (the server syncs what it acknowledged) and
// disconnects it. Unmount it first.
func (d *NBDDevice) Detach(ctx context.Context) error {
	var errs []error
	if f, err := os.OpenFile(d.Path, os.O_RDWR, 0); err == nil {
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("flush %s: %w", d.Path, err))
		}
		f.Close()
	}
	fam, err := netlink.GenlFamilyGet(nbdGenlFamily)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("%w: %w", ErrNoNBD, err))...)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	req.AddData(&nl.Genlmsg{Command: nbdCmdDisconnect, Version: nbdGenlVersion})
	req.AddData(nl.NewRtAttr(nbdAttrIndex, nl.Uint32Attr(uint32(d.Index))))
	if _, err := req.Execute(unix.NETLINK_GENERIC, 0); err != nil {
		errs = append(errs, fmt.Errorf("nbd disconnect %s: %w", d.Path, err))
	}
	for deadline := time.Now().Add(10 * time.Second); d.Connected() && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
	}
	return errors.Join(errs...)
}
