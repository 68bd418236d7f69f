package bootstrap

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud/image"
)

// Files the installer writes onto the root filesystem.
const (
	InstalledMarker = "etc/ultracloud/installed.json"
	TokenFile       = "etc/ultracloud/token"
	ServerFile      = "etc/ultracloud/phone-home-url"
	SystemIDFile    = "etc/ultracloud/system-id" // shipped by the bundle
	FirstBootMarker = "var/lib/ultracloud/first-boot"
	LoaderEntryFile = "loader/entries/ultracloud.conf" // on the ESP
	// NixCacheDir is where the installer puts a bundle's nix-cache on the
	// root (a binary cache for InstallClosure).
	NixCacheDir = "var/lib/ultracloud/nix-cache"
)

// Installed is the install marker's content.
type Installed struct {
	Node     string `json:"node"`
	SystemID string `json:"systemID"`
	Bundle   string `json:"bundle"`
	Attempt  int    `json:"attempt,omitempty"`
	// Run is the run id of the enrolment that installed the disk.
	Run       string    `json:"run,omitempty"`
	Installed time.Time `json:"installed"`
}

// Installer installs a machine: phone home, fetch and verify the bundle (the
// disk is untouched until it verifies), apply the DiskoPlan, write the
// bundle's esp/ and root/ parts onto the new filesystems in-process, write
// the boot loader entry and install marker, report each phase, reboot.
type Installer struct {
	// Client talks to the phone-home server.
	Client *Client
	// Identity is what the machine reports.
	Identity Identity
	// WorkDir holds the downloaded bundle.
	WorkDir string
	// Disks overrides where each plan disk is written (disk name → device
	// or image file); default: the enrolment's TargetDisk for a one-disk
	// plan, else each disk's device.
	Disks map[string]string
	// KernelOptions are the installed system's kernel options; the loader
	// entry adds ultracloud.role=node, ultracloud.root, ultracloud.node.
	KernelOptions string
	// Reboot is called last (nil: no reboot, e.g. in tests).
	Reboot func(context.Context) error
	// Logger; nil discards.
	Logger *slog.Logger
}

// InstallResult is what Run did.
type InstallResult struct {
	Enrollment *Enrollment
	Applied    []Applied
	Bundle     *Bundle
}

// Run performs the install. Any failure after enrolment is reported to the
// server as "failed" with the reason before Run returns it.
func (in *Installer) Run(ctx context.Context) (*InstallResult, error) {
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e, err := in.Client.PhoneHome(ctx, in.Identity)
	if err != nil {
		return nil, fmt.Errorf("phone home: %w", err)
	}
	log.Info("enrolled", "node", e.Node, "role", e.Role, "system", e.SystemID)
	res := &InstallResult{Enrollment: e}
	fail := func(stage string, err error) (*InstallResult, error) {
		err = fmt.Errorf("%s: %w", stage, err)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := in.Client.ReportPhase(rctx, e.Node, PhaseFailed, err.Error()); rerr != nil {
			log.Error("could not report failure", "err", rerr)
		}
		return res, err
	}
	report := func(p Phase) error { return in.Client.ReportPhase(ctx, e.Node, p, "") }

	plan, err := ParsePlan(e.Plan)
	if err == nil {
		err = plan.Validate(false)
	}
	if err != nil {
		return fail("plan", err)
	}
	targets := map[string]string{}
	for _, d := range plan.Disks {
		switch {
		case in.Disks[d.Name] != "":
			targets[d.Name] = in.Disks[d.Name]
		case len(plan.Disks) == 1 && e.TargetDisk != "":
			targets[d.Name] = e.TargetDisk
		default:
			targets[d.Name] = d.Device
		}
	}
	if err := report(PhasePlanFetched); err != nil {
		return fail("report", err)
	}

	if err := os.MkdirAll(in.WorkDir, 0o755); err != nil {
		return fail("bundle", err)
	}
	bpath := filepath.Join(in.WorkDir, e.Bundle.SHA256+".tar.zst")
	if err := in.Client.FetchBundle(ctx, e.Bundle, bpath); err != nil {
		return fail("bundle", err)
	}
	b, err := OpenBundle(bpath, e.Bundle.SHA256)
	if err != nil {
		return fail("bundle", err)
	}
	res.Bundle = b
	if err := report(PhaseBundleFetched); err != nil {
		return fail("report", err)
	}

	applied, err := plan.Apply(ctx, targets)
	if err != nil {
		return fail("disk", err)
	}
	res.Applied = applied
	if err := report(PhaseDiskApplied); err != nil {
		return fail("report", err)
	}

	if err := in.populate(ctx, e, b, applied); err != nil {
		return fail("install", err)
	}
	if err := report(PhaseInstalled); err != nil {
		return fail("report", err)
	}
	log.Info("installed", "node", e.Node)
	if in.Reboot != nil {
		if err := report(PhaseRebooting); err != nil {
			return fail("report", err)
		}
		if err := in.Reboot(ctx); err != nil {
			return fail("reboot", err)
		}
	}
	return res, nil
}

// populate writes the bundle, loader entry and markers into the ESP and
// root filesystems, in-process.
func (in *Installer) populate(ctx context.Context, e *Enrollment, b *Bundle, applied []Applied) error {
	mounts := Mounts(applied)
	root, ok := mounts["/"]
	if !ok {
		return fmt.Errorf("the plan mounts nothing at /")
	}
	esp, ok := mounts["/boot"]
	if !ok {
		esp, ok = mounts["/boot/efi"]
	}
	if !ok {
		return fmt.Errorf("the plan has no ESP mounted at /boot or /boot/efi")
	}
	// One filesystem handle per partition.
	open := map[string]*image.FSWriter{}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	writer := func(a Applied) (*image.FSWriter, error) {
		key := fmt.Sprintf("%s#%d", a.Target, a.Index)
		if w, ok := open[key]; ok {
			return w, nil
		}
		fsys, c, err := image.OpenPartitionFS(a.Target, a.Index, false)
		if err != nil {
			return nil, fmt.Errorf("partition %d of %s: %w", a.Index, a.Target, err)
		}
		closers = append(closers, c)
		w := image.NewFSWriter(fsys)
		open[key] = w
		return w, nil
	}
	rw, err := writer(root)
	if err != nil {
		return err
	}
	ew, err := writer(esp)
	if err != nil {
		return err
	}
	sink := sinkFunc(func(target, name string, _ fs.FileMode, r io.Reader) error {
		switch target {
		case TargetESP:
			return ew.WriteFile(name, r)
		case TargetNixCache:
			// The closure a first-boot agent installs (InstallClosure).
			return rw.WriteFile(path.Join(NixCacheDir, name), r)
		}
		return rw.WriteFile(name, r)
	})
	if err := b.Extract(ctx, sink); err != nil {
		return err
	}
	rootLabel := ""
	for _, a := range applied {
		if a.Mountpoint == "/" {
			rootLabel = a.Extent.Label
		}
	}
	opts := strings.TrimSpace(fmt.Sprintf("%s ultracloud.role=node ultracloud.node=%s ultracloud.root=PARTLABEL=%s",
		in.KernelOptions, e.Node, rootLabel))
	entry := fmt.Sprintf("title UltraCloud %s (%s)\nlinux /ultracloud/vmlinuz\ninitrd /ultracloud/initrd.img\noptions %s\n", e.Node, e.SystemID, opts)
	marker, _ := json.MarshalIndent(Installed{Node: e.Node, SystemID: e.SystemID, Bundle: b.SHA256, Run: e.Run, Installed: time.Now().UTC()}, "", "  ")
	for _, w := range []struct {
		fw   *image.FSWriter
		name string
		data string
	}{
		{ew, LoaderEntryFile, entry},
		{rw, InstalledMarker, string(marker) + "\n"},
		{rw, TokenFile, in.Client.Token() + "\n"},
		{rw, ServerFile, in.Client.base + "\n"},
	} {
		if err := w.fw.WriteFile(w.name, strings.NewReader(w.data)); err != nil {
			return err
		}
	}
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

type sinkFunc func(target, name string, mode fs.FileMode, r io.Reader) error

func (f sinkFunc) WriteFile(target, name string, mode fs.FileMode, r io.Reader) error {
	return f(target, name, mode, r)
}

// Agent runs on an installed system's first boot: it writes the first-boot
// marker, reports first-boot, compares the desired system with the
// installed one and reports active (or failed with the mismatch).
type Agent struct {
	// RootDir is the installed root filesystem (mounted).
	RootDir string
	// Node is the node's name.
	Node string
	// Client is built from the root's token and server URL when nil.
	Client *Client
	Logger *slog.Logger
	// BeforeActive runs after every check passed and before "active" is
	// reported (e.g. unmount the root so its markers are on disk when the
	// harness powers the machine off and reads it).
	BeforeActive func() error

	// Identity is what the node sends when it enrols again after a
	// decommission (Serve).
	Identity Identity
	// Interval is how often Serve asks for the desired state (default 1 s).
	Interval time.Duration
	// Lifecycle is what the node does when the deployer drains,
	// decommissions or re-enrols it (Serve).
	Lifecycle LifecycleHooks

	// installed is the installed system id (FirstBoot).
	installed string
}

// FirstBoot performs the first-boot sequence.
func (a *Agent) FirstBoot(ctx context.Context) error {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(a.RootDir, name))
		return strings.TrimSpace(string(b)), err
	}
	if a.Client == nil {
		tok, err := read(TokenFile)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		url, err := read(ServerFile)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.Client = NewClient(url, WithToken(tok), WithClientLogger(a.Logger))
	}
	var inst Installed
	raw, err := read(InstalledMarker)
	if err == nil {
		err = json.Unmarshal([]byte(raw), &inst)
	}
	if err != nil {
		return a.fail(ctx, fmt.Errorf("install marker: %w", err))
	}
	if a.Node == "" {
		a.Node = inst.Node
	}
	marker := filepath.Join(a.RootDir, FirstBootMarker)
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		return a.fail(ctx, err)
	}
	if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return a.fail(ctx, err)
	}
	if err := a.Client.ReportPhase(ctx, a.Node, PhaseFirstBoot, ""); err != nil {
		return err
	}
	installed, err := read(SystemIDFile)
	if err != nil {
		return a.fail(ctx, fmt.Errorf("installed system id: %w", err))
	}
	desired, err := a.Client.Desired(ctx, a.Node)
	if err != nil {
		return a.fail(ctx, err)
	}
	if desired.SystemID != installed {
		return a.fail(ctx, fmt.Errorf("desired system %q, installed %q", desired.SystemID, installed))
	}
	a.installed = installed
	if a.BeforeActive != nil {
		if err := a.BeforeActive(); err != nil {
			return a.fail(ctx, err)
		}
	}
	return a.Client.ReportPhase(ctx, a.Node, PhaseActive, "")
}

func (a *Agent) fail(ctx context.Context, err error) error {
	if a.Client != nil && a.Node != "" {
		a.Client.ReportPhase(context.WithoutCancel(ctx), a.Node, PhaseFailed, err.Error())
	}
	return err
}
