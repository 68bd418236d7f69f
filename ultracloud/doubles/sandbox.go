package doubles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// sandbox is one running VM on this node.
type sandbox struct {
	spec    VMSpec
	port    Port
	cmd     *exec.Cmd
	ln      net.Listener
	cgroup  string
	started time.Time
	done    chan struct{}
	// claimed lists the volumes whose attachment this VM holds; devices
	// the kernel NBD devices attached for it.
	claimed []string
	devices []*NBDDevice
}

func (s *sandbox) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// start attaches the VM's prismnet port, opens its services endpoint and
// launches its sandbox in a memory-limited cgroup.
func (p *plasmavmc) start(ctx context.Context, s VMSpec) (*sandbox, error) {
	img := filepath.Join(p.cfg.StateDir, "images", s.Image)
	if _, err := os.Stat(img); err != nil {
		return nil, fmt.Errorf("image %q is not on %s's disk (upload it: PUT /v1/images/%s): %w", s.Image, p.cfg.Node, s.Image, err)
	}
	sb := &sandbox{spec: s, done: make(chan struct{})}
	fail := func(err error) (*sandbox, error) {
		p.stop(ctx, sb)
		return nil, err
	}
	// Volumes first: a VM whose volume another VM holds waits (its
	// start is tried again) without taking a port meanwhile.
	var volArgs []string
	for _, m := range s.Volumes {
		att := VolumeAttachment{Volume: m.Volume, VM: s.Name, VMID: s.ID, Node: p.cfg.Node, Since: time.Now().UTC()}
		vol, err := claimVolume(ctx, p.cli, p.lease.ID(), att)
		if err != nil {
			return fail(err)
		}
		sb.claimed = append(sb.claimed, m.Volume)
		dev, err := AttachNBD(ctx, vol.Export, vol.Name)
		if err != nil {
			return fail(fmt.Errorf("volume %s: %w", m.Volume, err))
		}
		sb.devices = append(sb.devices, dev)
		att.Device = dev.Path
		if _, err := claimVolume(ctx, p.cli, p.lease.ID(), att); err != nil {
			return fail(err)
		}
		volArgs = append(volArgs, "--volume", dev.Path+":"+m.Path+":"+vol.FS)
	}
	port, err := p.attach(ctx, s.Name)
	if err != nil {
		return fail(fmt.Errorf("prismnet port: %w", err))
	}
	sb.port = port
	nsPath := filepath.Join("/run/netns", port.NetNS)
	if sb.ln, err = listenIn(nsPath, net.JoinHostPort(ServicesIP, fmt.Sprint(LightningstorPort))); err != nil {
		return fail(fmt.Errorf("services endpoint: %w", err))
	}
	go p.forward(sb.ln)
	cg, fd, err := p.cgroup(s)
	if err != nil {
		return fail(fmt.Errorf("cgroup: %w", err))
	}
	sb.cgroup = cg
	defer fd.Close()
	logf, err := os.OpenFile(filepath.Join(p.cfg.StateDir, "vms", s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- plasmavmc: VM %s (%s) starting on %s at %s, address %s\n", s.Name, s.ID, p.cfg.Node, time.Now().UTC().Format(time.RFC3339), port.IP)
	argv := append(append([]string{}, p.cfg.Launcher...), "--netns", nsPath, "--image", img, "--hostname", s.Name, "--memory", fmt.Sprint(s.MemoryMiB))
	argv = append(append(argv, volArgs...), "--")
	argv = append(argv, s.Command...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UseCgroupFD: true, CgroupFD: int(fd.Fd()),
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("launch: %w", err))
	}
	sb.cmd, sb.started = cmd, time.Now().UTC()
	go func() {
		err := cmd.Wait()
		p.log.Info("VM exited", "vm", s.Name, "err", err)
		close(sb.done)
	}()
	return sb, nil
}

// stop ends a VM: SIGTERM, SIGKILL after 3 s; then its endpoint, port,
// cgroup and status go. Under load a reconcile's 10 s can end between
// the NBD detach and the volume's release (CI: the volume stayed held for
// good); a release that fails is tried again by every reconcile. Call it
// with p.mu held.
func (p *plasmavmc) stop(ctx context.Context, sb *sandbox) {
	if sb.cmd != nil && !sb.exited() {
		sb.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-sb.done:
		case <-time.After(3 * time.Second):
			sb.cmd.Process.Kill()
			<-sb.done
		}
	}
	if sb.ln != nil {
		sb.ln.Close()
	}
	if sb.port.Name != "" {
		p.detach(ctx, sb.port.Name)
	}
	if sb.cgroup != "" {
		os.Remove(sb.cgroup)
	}
	// The VM's mounts went with its mount namespace: flush and disconnect
	// its volumes, then let other VMs have them.
	for _, d := range sb.devices {
		if err := d.Detach(ctx); err != nil {
			p.log.Warn("volume detach", "vm", sb.spec.Name, "device", d.Path, "err", err)
		}
	}
	for _, v := range sb.claimed {
		if err := releaseVolume(ctx, p.cli, v, sb.spec.ID); err != nil {
			p.log.Warn("volume release (tried again at the next reconcile)", "vm", sb.spec.Name, "volume", v, "err", err)
			if p.unreleased == nil {
				p.unreleased = map[string]string{}
			}
			p.unreleased[v] = sb.spec.ID
		}
	}
	// The status goes only if it is still this incarnation's.
	key := PrefixPlasmavmcStatus + sb.spec.Name
	if resp, err := p.cli.Get(ctx, key); err == nil && len(resp.Kvs) == 1 {
		var st VMStatus
		if json.Unmarshal(resp.Kvs[0].Value, &st) == nil && st.ID == sb.spec.ID && st.Node == p.cfg.Node {
			p.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).Then(clientv3.OpDelete(key)).Commit()
		}
	}
	p.log.Info("VM stopped", "vm", sb.spec.Name)
}

// attach asks this node's prismnet for the VM's port (the one it already
// has after a plasmavmc restart).
func (p *plasmavmc) attach(ctx context.Context, name string) (Port, error) {
	base, err := p.cfg.Prismnet()
	if err != nil {
		return Port{}, err
	}
	return attachPort(ctx, base, name)
}

func (p *plasmavmc) detach(ctx context.Context, name string) {
	if base, err := p.cfg.Prismnet(); err == nil {
		call(ctx, http.MethodDelete, base+"/v1/ports/"+name)
	}
}

func call(ctx context.Context, method, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// cgroup creates the VM's cgroup under plasmavmc/ with its memory limit
// (no swap) and returns it with an open directory for CLONE_INTO_CGROUP.
func (p *plasmavmc) cgroup(s VMSpec) (string, *os.File, error) {
	root := p.cfg.CgroupRoot
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		os.MkdirAll(root, 0o755)
		if err := syscall.Mount("cgroup2", root, "cgroup2", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			return "", nil, fmt.Errorf("mount cgroup2 on %s: %w", root, err)
		}
	}
	parent := filepath.Join(root, "plasmavmc")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", nil, err
	}
	for _, d := range []string{root, parent} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
			return "", nil, fmt.Errorf("enable the memory controller in %s: %w", d, err)
		}
	}
	dir := filepath.Join(parent, s.Name)
	os.Remove(dir) // a previous incarnation's, empty
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(fmt.Sprint(s.MemoryMiB<<20)), 0o644); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("memory.max: %w", err)
	}
	os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	return dir, f, nil
}

// listenIn listens on addr inside the network namespace at nsPath, first
// bringing its loopback up with addr's IP on it.
func listenIn(nsPath, addr string) (net.Listener, error) {
	host, _, _ := net.SplitHostPort(addr)
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	h, err := netlink.NewHandleAt(target, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Delete()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return nil, err
	}
	a, _ := netlink.ParseAddr(host + "/32")
	if err := h.AddrAdd(lo, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := netns.Set(orig); err != nil {
		// This thread stays in the VM's namespace: leave it locked, so
		// it ends with its goroutine.
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	runtime.UnlockOSThread()
	return ln, lerr
}

// forward copies each connection to the services endpoint to the first
// lightningstor address that answers.
func (p *plasmavmc) forward(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var up net.Conn
			var errs []error
			for _, a := range p.cfg.Storage {
				if up, err = net.DialTimeout("tcp", a, 2*time.Second); err == nil {
					break
				}
				errs = append(errs, err)
			}
			if up == nil {
				p.log.Warn("services endpoint: no lightningstor answers", "err", errors.Join(errs...))
				return
			}
			defer up.Close()
			go func() {
				io.Copy(up, c)
				if tc, ok := up.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}()
			io.Copy(c, up)
		}()
	}
}

// VMInit is a plasmavmc sandbox's first process (`ultracloud-doubles
// vm-init`), started in new mount, PID, UTS and IPC namespaces inside the
// VM's cgroup: it joins the VM's network namespace (--netns), mounts a RAM
// disk of --memory MiB as the root, unpacks the image (--image, a gzipped
// or plain newc archive) into it, mounts /proc, /tmp and a /dev with
// null, zero, random and urandom, mounts each --volume (a coronafs volume's
// NBD device), sets the hostname and executes the VM's command (the
// arguments after --) chrooted into the root.
func VMInit(args []string) error {
	fs := flag.NewFlagSet("vm-init", flag.ContinueOnError)
	nsPath := fs.String("netns", "", "the VM's network namespace")
	image := fs.String("image", "", "the VM image")
	hostname := fs.String("hostname", "vm", "the VM's hostname")
	memory := fs.Int("memory", 128, "the RAM disk's size in MiB")
	type volume struct{ dev, path, fstype string }
	var volumes []volume
	fs.Func("volume", "DEVICE:PATH:FSTYPE, a block device to mount at PATH in the VM (repeatable)", func(v string) error {
		parts := strings.Split(v, ":")
		if len(parts) != 3 || !filepath.IsAbs(parts[0]) || !filepath.IsAbs(parts[1]) || parts[2] == "" {
			return fmt.Errorf("--volume %q: want DEVICE:PATH:FSTYPE, e.g. /dev/nbd0:/data:vfat", v)
		}
		volumes = append(volumes, volume{parts[0], filepath.Clean(parts[1]), parts[2]})
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if *nsPath == "" || *image == "" || len(argv) == 0 {
		return errors.New("usage: vm-init --netns PATH --image PATH [--hostname H] [--memory MiB] [--volume DEV:PATH:FSTYPE]... -- COMMAND [ARG...]")
	}
	runtime.LockOSThread() // the exec below inherits this thread's namespace
	ns, err := netns.GetFromPath(*nsPath)
	if err != nil {
		return fmt.Errorf("netns %s: %w", *nsPath, err)
	}
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("join netns %s: %w", *nsPath, err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := "/mnt"
	if err := unix.Mount("vmroot", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%dm,mode=0755", *memory)); err != nil {
		return fmt.Errorf("root RAM disk: %w", err)
	}
	if err := unpack(*image, root); err != nil {
		return fmt.Errorf("image %s: %w", *image, err)
	}
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"proc", "proc", "proc", ""},
		{"tmpfs", "tmp", "tmpfs", "mode=1777,size=16m"},
		{"tmpfs", "dev", "tmpfs", "mode=0755,size=64k"},
	} {
		dst := filepath.Join(root, m.dst)
		os.MkdirAll(dst, 0o755)
		if err := unix.Mount(m.src, dst, m.fstype, unix.MS_NOSUID, m.data); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	for _, v := range volumes {
		dst := filepath.Join(root, v.path)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("volume mount point %s: %w", v.path, err)
		}
		if err := unix.Mount(v.dev, dst, v.fstype, unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("mount volume %s (%s) at %s: %w", v.dev, v.fstype, v.path, err)
		}
	}
	for name, minor := range map[string]uint32{"null": 3, "zero": 5, "random": 8, "urandom": 9} {
		if err := unix.Mknod(filepath.Join(root, "dev", name), unix.S_IFCHR|0o666, int(unix.Mkdev(1, minor))); err != nil {
			return fmt.Errorf("/dev/%s: %w", name, err)
		}
	}
	if err := unix.Sethostname([]byte(*hostname)); err != nil {
		return err
	}
	if err := unix.Chroot(root); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	env := []string{"PATH=/bin", "HOSTNAME=" + *hostname, "HOME=/"}
	return syscall.Exec(argv[0], argv, env)
}

// unpack extracts a (gzipped) newc archive into root.
func unpack(image, root string) error {
	raw, err := os.ReadFile(image)
	if err != nil {
		return err
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return err
		}
	}
	rr := cpio.Newc.Reader(bytes.NewReader(raw))
	n := 0
	err = cpio.ForEachRecord(rr, func(r cpio.Record) error {
		if strings.Contains(r.Name, "..") {
			return fmt.Errorf("entry %q leaves the root", r.Name)
		}
		n++
		return cpio.CreateFileInRoot(r, root, false)
	})
	if err == nil && n == 0 {
		err = errors.New("no entries: not a newc archive")
	}
	return err
}
