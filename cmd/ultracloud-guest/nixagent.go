package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

// The nix-agent double's files on the node.
const (
	nixAgentState  = "/var/lib/ultracloud"
	systemProfiles = "/nix/var/nix/profiles"
	currentSystem  = "/run/current-system"
)

// ClosureActivation is what the nix-agent double records in
// /var/lib/ultracloud/activation.json once a system is active.
type ClosureActivation struct {
	Node   string                    `json:"node"`
	System string                    `json:"system"`
	Bundle string                    `json:"bundle"`
	Paths  []bootstrap.InstalledPath `json:"paths"`
	At     time.Time                 `json:"at"`
}

// runNixAgent is the nix-agent double (ultracloud.role=nix-agent), started
// at boot: it phones home, learns its desired system (a store path),
// fetches its bundle, installs the closure in the bundle's nix-cache into
// /nix/store (bootstrap.InstallClosure: every NarHash checked, the closure
// complete against References; it cannot build, so a missing path fails),
// switches the system profile and /run/current-system, runs the system's
// activate script, and reports active with the store path. Every failure
// is reported as failed with the reason.
func (g *guest) runNixAgent() {
	url := g.arg("ultracloud.phone-home")
	if url == "" {
		g.fatal("nix-agent: no ultracloud.phone-home=URL on the kernel command line")
	}
	g.marker("nix-agent-start", "server", url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c := bootstrap.NewClient(url, bootstrap.WithClientLogger(g.slogger()))
	var e *bootstrap.Enrollment
	for {
		var err error
		if e, err = c.PhoneHome(ctx, identity()); err == nil {
			break
		}
		// Refusals are final; the deployer may still be coming up.
		if errors.Is(err, bootstrap.ErrForbidden) || errors.Is(err, bootstrap.ErrUnknownMachine) || ctx.Err() != nil {
			g.marker("nix-agent-failed", "reason", err.Error())
			return
		}
		g.logf("nix-agent: phone home: %v; retrying", err)
		time.Sleep(2 * time.Second)
	}
	system, err := g.activateClosure(ctx, c, e)
	if err != nil {
		c.ReportPhase(context.WithoutCancel(ctx), e.Node, bootstrap.PhaseFailed, err.Error())
		g.marker("nix-agent-failed", "reason", err.Error())
		return
	}
	g.marker("nix-agent-active", "system", system)
}

func (g *guest) activateClosure(ctx context.Context, c *bootstrap.Client, e *bootstrap.Enrollment) (string, error) {
	d, err := c.Desired(ctx, e.Node)
	if err != nil {
		return "", err
	}
	system := d.SystemID
	if !strings.HasPrefix(system, bootstrap.StoreDir+"/") {
		return "", fmt.Errorf("desired system %q is not a store path: the nix-agent activates Nix closures", system)
	}
	bpath := filepath.Join(nixAgentState, e.Bundle.SHA256+".tar.zst")
	if err := os.MkdirAll(nixAgentState, 0o755); err != nil {
		return "", err
	}
	if err := c.FetchBundle(ctx, e.Bundle, bpath); err != nil {
		return "", err
	}
	b, err := bootstrap.OpenBundle(bpath, e.Bundle.SHA256)
	if err != nil {
		return "", err
	}
	if err := c.ReportPhase(ctx, e.Node, bootstrap.PhaseBundleFetched, ""); err != nil {
		return "", err
	}
	cache := filepath.Join(nixAgentState, "nix-cache", e.Bundle.SHA256)
	os.RemoveAll(cache)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	if err := b.Extract(ctx, bootstrap.DirSink{bootstrap.TargetNixCache: cache}); err != nil {
		return "", err
	}
	paths, err := bootstrap.InstallClosure(ctx, os.DirFS(cache), system, bootstrap.StoreDir)
	if err != nil {
		return "", err
	}
	if err := c.ReportPhase(ctx, e.Node, bootstrap.PhaseInstalled, ""); err != nil {
		return "", err
	}
	if err := switchSystem(system); err != nil {
		return "", err
	}
	if act := filepath.Join(system, "activate"); fileExists(act) {
		cmd := exec.CommandContext(ctx, "/bin/sh", act)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("activation %s: %w", act, err)
		}
	}
	rec, _ := json.MarshalIndent(ClosureActivation{Node: e.Node, System: system, Bundle: b.SHA256, Paths: paths, At: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(nixAgentState, "activation.json"), append(rec, '\n'), 0o644); err != nil {
		return "", err
	}
	return system, c.Report(ctx, e.Node, bootstrap.PhaseReport{Phase: bootstrap.PhaseActive, System: system})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// switchSystem makes system the next generation of the system profile
// (system-N-link, system → system-N-link, as nix-env --set does) and
// points /run/current-system at it; each link is replaced atomically.
func switchSystem(system string) error {
	if err := os.MkdirAll(systemProfiles, 0o755); err != nil {
		return err
	}
	gens, _ := filepath.Glob(filepath.Join(systemProfiles, "system-*-link"))
	gen := fmt.Sprintf("system-%d-link", len(gens)+1)
	for _, l := range []struct{ link, target string }{
		{filepath.Join(systemProfiles, gen), system},
		{filepath.Join(systemProfiles, "system"), gen},
		{currentSystem, system},
	} {
		tmp := l.link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(l.target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, l.link); err != nil {
			return err
		}
	}
	return nil
}
