package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// Activation is what `ultracloud-guest activate` records in
// /var/lib/ultracloud/activation.json: what was unpacked and switched to.
type Activation struct {
	Node     string    `json:"node"`
	SystemID string    `json:"systemID"`
	Bundle   string    `json:"bundle"`
	Unpacked int       `json:"unpacked"`
	Switched bool      `json:"switched"`
	At       time.Time `json:"at"`
}

// countingSink unpacks into directories (staged, see bootstrap.Stager)
// and counts files.
type countingSink struct {
	bootstrap.DirSink
	n *int
}

func (c countingSink) WriteFile(target, name string, mode fs.FileMode, r io.Reader) error {
	*c.n++
	return c.DirSink.WriteFile(target, name, mode, r)
}

// Stage implements bootstrap.Stager, counting what is staged.
func (c countingSink) Stage() (bootstrap.Sink, func() error, func(), error) {
	staged, commit, discard, err := c.DirSink.Stage()
	if err != nil {
		return nil, nil, nil, err
	}
	return countingSink{DirSink: staged.(bootstrap.DirSink), n: c.n}, commit, discard, nil
}

// activateMain receives a prebuilt system from the phone-home server and
// switches to it without building anything: phone home, fetch and verify
// the bundle, unpack it under /var/lib/ultracloud/systems/<sha256>, point
// /run/current-system at its root, check the desired system, report active.
func activateMain(args []string) int {
	fs := flag.NewFlagSet("activate", flag.ContinueOnError)
	server := fs.String("server", "", "phone-home server URL")
	if err := fs.Parse(args); err != nil || *server == "" {
		fmt.Fprintln(os.Stderr, "usage: ultracloud-guest activate --server URL")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := bootstrap.NewClient(*server)
	e, err := c.PhoneHome(ctx, identity())
	if err != nil {
		fmt.Fprintln(os.Stderr, "activate:", err)
		return 1
	}
	fail := func(err error) int {
		c.ReportPhase(context.WithoutCancel(ctx), e.Node, bootstrap.PhaseFailed, err.Error())
		fmt.Fprintln(os.Stderr, "activate:", err)
		return 1
	}
	base := filepath.Join("/var/lib/ultracloud/systems", e.Bundle.SHA256)
	bpath := filepath.Join("/var/lib/ultracloud", e.Bundle.SHA256+".tar.zst")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fail(err)
	}
	if err := c.FetchBundle(ctx, e.Bundle, bpath); err != nil {
		return fail(err)
	}
	b, err := bootstrap.OpenBundle(bpath, e.Bundle.SHA256)
	if err != nil {
		return fail(err)
	}
	if err := c.ReportPhase(ctx, e.Node, bootstrap.PhaseBundleFetched, ""); err != nil {
		return fail(err)
	}
	unpacked := 0
	sink := countingSink{n: &unpacked, DirSink: bootstrap.DirSink{bootstrap.TargetRoot: filepath.Join(base, "root"), bootstrap.TargetESP: filepath.Join(base, "esp")}}
	for _, d := range sink.DirSink {
		os.MkdirAll(d, 0o755)
	}
	if err := b.Extract(ctx, sink); err != nil {
		return fail(err)
	}
	if err := c.ReportPhase(ctx, e.Node, bootstrap.PhaseInstalled, ""); err != nil {
		return fail(err)
	}
	os.MkdirAll("/run", 0o755)
	tmp := "/run/current-system.new"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join(base, "root"), tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, "/run/current-system"); err != nil {
		return fail(err)
	}
	installed, _ := os.ReadFile("/run/current-system/etc/ultracloud/system-id")
	desired, err := c.Desired(ctx, e.Node)
	if err != nil {
		return fail(err)
	}
	if got := strings.TrimSpace(string(installed)); got != desired.SystemID {
		return fail(fmt.Errorf("desired system %q, activated %q", desired.SystemID, got))
	}
	rec, _ := json.MarshalIndent(Activation{Node: e.Node, SystemID: desired.SystemID, Bundle: b.SHA256, Unpacked: unpacked,
		Switched: true, At: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile("/var/lib/ultracloud/activation.json", append(rec, '\n'), 0o644); err != nil {
		return fail(err)
	}
	if err := c.ReportPhase(ctx, e.Node, bootstrap.PhaseActive, ""); err != nil {
		return fail(err)
	}
	fmt.Printf("activated %s (%d files unpacked, nothing built)\n", desired.SystemID, unpacked)
	return 0
}
