package lanes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// ErrNoKVM: the publishable suite stops at preflight on a host without
// usable KVM (unless AllowTCG).
var ErrNoKVM = errors.New("no usable KVM")

// Environment is what the publishable suite records of its host
// (environment.json), before anything runs.
type Environment struct {
	Taken time.Time `json:"taken"`
	// Host is the preflight's view (kernel, QEMU, OVMF, /dev/kvm verdict,
	// nested parameter, accelerator).
	Host ultracloud.HostEnv `json:"host"`
	// CPUModel and VirtFlag ("vmx", "svm" or "") from /proc/cpuinfo.
	CPUModel string `json:"cpuModel"`
	VirtFlag string `json:"virtFlag"`
	// KVMDevice is /dev/kvm's mode and owner ("" when absent).
	KVMDevice string `json:"kvmDevice"`
	// QEMUVersion, OVMFPackage and NixVersion as their tools report them.
	QEMUVersion string `json:"qemuVersion"`
	OVMFPackage string `json:"ovmfPackage"`
	NixVersion  string `json:"nixVersion"`
	// Testkit is this module's version and VCS commit.
	TestkitVersion string `json:"testkitVersion"`
	TestkitCommit  string `json:"testkitCommit"`
	// AllowTCG records that the suite was allowed to run without KVM
	// (the fixture guest only).
	AllowTCG bool `json:"allowTCG"`
}

// CaptureEnvironment describes this host for the publishable suite.
func CaptureEnvironment(ctx context.Context, host ultracloud.HostEnv) Environment {
	e := Environment{Taken: time.Now().UTC(), Host: host}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch strings.TrimSpace(k) {
			case "model name":
				if e.CPUModel == "" {
					e.CPUModel = strings.TrimSpace(v)
				}
			case "flags":
				for _, fl := range strings.Fields(v) {
					if fl == "vmx" || fl == "svm" {
						e.VirtFlag = fl
					}
				}
			}
		}
		f.Close()
	}
	if st, err := os.Stat("/dev/kvm"); err == nil && host.KVMPresent {
		e.KVMDevice = st.Mode().String()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			e.KVMDevice += fmt.Sprintf(" uid=%d gid=%d", sys.Uid, sys.Gid)
		}
	}
	first := func(name string, args ...string) string {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, name, args...).Output()
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	if host.QEMU != "" {
		e.QEMUVersion = first(host.QEMU, "--version")
	}
	e.OVMFPackage = first("dpkg-query", "-W", "-f=${Package} ${Version}", "ovmf")
	e.NixVersion = first("nix", "--version")
	if bi, ok := debug.ReadBuildInfo(); ok {
		e.TestkitVersion = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				e.TestkitCommit = s.Value
			}
			if s.Key == "vcs.modified" && s.Value == "true" {
				e.TestkitCommit += "+modified"
			}
		}
	}
	if e.TestkitCommit == "" {
		// Built without VCS stamps (go run, GOFLAGS=-buildvcs=false):
		// the checkout this runs in, when it is the testkit's.
		if mod := first("go", "list", "-m"); mod == "github.com/photoncloud/testkit" {
			if rev := first("git", "rev-parse", "HEAD"); rev != "" {
				e.TestkitCommit = rev
				if out, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
					e.TestkitCommit += "+modified"
				}
			}
		}
	}
	return e
}

// PublishableOptions configure the publishable KVM suite.
type PublishableOptions struct {
	// AllowTCG runs the suite without usable KVM (fixture guest only);
	// the report and environment.json record it.
	AllowTCG bool
	// Smoke, Demo and Matrix are the members' options.
	Smoke  FreshSmokeOptions
	Demo   DemoVMWebappOptions
	Matrix MatrixOptions
}

// PublishableKVMSuite is the seed's run-publishable-kvm-suite.sh: it
// writes WorkDir/environment.json (kernel, CPU and its vmx/svm flag,
// /dev/kvm presence, mode and usability, the nested parameter, QEMU,
// OVMF, Nix and testkit versions), then runs fresh-smoke,
// fresh-demo-vm-webapp and fresh-matrix in order into one aggregate
// report. Without usable KVM it stops after writing environment.json
// with ErrNoKVM (exit 2) unless AllowTCG. A member that is incomplete
// (skipped checks) makes the suite incomplete, never passed.
func PublishableKVMSuite(ctx context.Context, cfg ultracloud.RunConfig, o PublishableOptions) (*ultracloud.Report, error) {
	env := CaptureEnvironment(ctx, cfg.Host)
	env.AllowTCG = o.AllowTCG
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.WorkDir, "environment.json")
	raw, _ := json.MarshalIndent(env, "", "  ")
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return nil, err
	}
	if !cfg.Host.KVMUsable && !o.AllowTCG {
		return nil, fmt.Errorf("%w: %s; the publishable suite runs nested-KVM lanes and stops at preflight (environment written to %s; --allow-tcg runs it on the fixture guest under TCG)",
			ErrNoKVM, cfg.Host.KVMReason, path)
	}
	members := []member{
		{"fresh-smoke", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return FreshSmoke(ctx, c, o.Smoke)
		}},
		{"fresh-demo-vm-webapp", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return FreshDemoVMWebapp(ctx, c, o.Demo)
		}},
		{"fresh-matrix", func(ctx context.Context, c ultracloud.RunConfig) (*ultracloud.Report, error) {
			return FreshMatrix(ctx, c, o.Matrix)
		}},
	}
	return aggregate(ctx, cfg, "publishable-kvm-suite", members, func(r *Run) {
		r.Artifact("environment.json", path)
		if o.AllowTCG && !cfg.Host.KVMUsable {
			r.Event("", "allow-tcg", "run without usable KVM (--allow-tcg): "+cfg.Host.KVMReason)
		}
	})
}

// PublishableArgs turns the seed's `run-publishable-kvm-suite.sh DIR
// [flags]` into driver flags: a leading DIR becomes -work-dir DIR and
// -junit-dir DIR.
func PublishableArgs(args []string) []string {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return append([]string{"-work-dir", args[0], "-junit-dir", args[0]}, args[1:]...)
	}
	return args
}
