package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// ErrAccel: the requested accelerator cannot be used on this host.
var ErrAccel = errors.New("accelerator unavailable")

// EnvAccel is the environment variable that forces an accelerator
// (kvm, tcg or auto).
const EnvAccel = "ULTRACLOUD_ACCEL"

// EnvOVMFCode and EnvOVMFVars point at UEFI firmware files outside the
// distribution paths (e.g. nixpkgs' OVMF.fd in a flake check).
const (
	EnvOVMFCode = "ULTRACLOUD_OVMF_CODE"
	EnvOVMFVars = "ULTRACLOUD_OVMF_VARS"
)

// PreflightOption adjusts Preflight.
type PreflightOption func(*preflightOptions)

type preflightOptions struct {
	accel  ultracloud.Accel
	getenv func(string) string
	root   string
	qemu   string
}

func defaultPreflightOptions() preflightOptions {
	return preflightOptions{accel: "", getenv: os.Getenv, root: "/", qemu: "qemu-system-x86_64"}
}

// WithAccel forces an accelerator; it wins over ULTRACLOUD_ACCEL.
func WithAccel(a ultracloud.Accel) PreflightOption {
	return func(o *preflightOptions) { o.accel = a }
}

// WithGetenv replaces os.Getenv (tests, embedding).
func WithGetenv(f func(string) string) PreflightOption {
	return func(o *preflightOptions) { o.getenv = f }
}

// WithHostRoot reads /dev, /sys, /proc and /usr/share below root instead of
// "/" (for tests that model other hosts).
func WithHostRoot(root string) PreflightOption {
	return func(o *preflightOptions) { o.root = root }
}

// WithQEMU names the QEMU binary to look for (default qemu-system-x86_64).
func WithQEMU(path string) PreflightOption {
	return func(o *preflightOptions) { o.qemu = path }
}

// OVMF firmware locations, in the order they are tried.
var ovmfPairs = [][2]string{
	{"usr/share/OVMF/OVMF_CODE_4M.fd", "usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"usr/share/OVMF/OVMF_CODE.fd", "usr/share/OVMF/OVMF_VARS.fd"},
	{"usr/share/edk2/ovmf/OVMF_CODE.fd", "usr/share/edk2/ovmf/OVMF_VARS.fd"},
	{"usr/share/qemu/edk2-x86_64-code.fd", "usr/share/qemu/edk2-i386-vars.fd"},
}

// Preflight inspects the host and picks the accelerator: kvm only when KVM is
// present and usable for Linux guests, else tcg. ULTRACLOUD_ACCEL (or
// WithAccel) forces one; forcing kvm where /dev/kvm is missing is an error
// wrapping ErrAccel. Missing QEMU or OVMF are listed in Problems, not errors:
// lanes that need them refuse to run with that list.
func Preflight(ctx context.Context, opts ...PreflightOption) (ultracloud.HostEnv, error) {
	o := defaultPreflightOptions()
	for _, opt := range opts {
		opt(&o)
	}
	at := func(p string) string { return filepath.Join(o.root, p) }
	env := ultracloud.HostEnv{CPUs: runtime.NumCPU()}
	env.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile(at("proc/sys/kernel/osrelease")); err == nil {
		env.Kernel = strings.TrimSpace(string(b))
	}
	env.MemoryMiB = memTotalMiB(at("proc/meminfo"))

	if path, err := exec.LookPath(o.qemu); err == nil {
		env.QEMU = path
		env.QEMUVersion = qemuVersion(ctx, path)
	} else {
		env.Problems = append(env.Problems, fmt.Sprintf("%s not found: install Debian's qemu-system-x86 (make deps)", o.qemu))
	}
	if code, vars := o.getenv(EnvOVMFCode), o.getenv(EnvOVMFVars); code != "" || vars != "" {
		if !fileExists(code) || !fileExists(vars) {
			return env, fmt.Errorf("%w: %s=%q and %s=%q must both name existing files", ErrConfig, EnvOVMFCode, code, EnvOVMFVars, vars)
		}
		env.OVMFCode, env.OVMFVars = code, vars
	}
	for _, pair := range ovmfPairs {
		if env.OVMFCode != "" {
			break
		}
		if fileExists(at(pair[0])) && fileExists(at(pair[1])) {
			env.OVMFCode, env.OVMFVars = at(pair[0]), at(pair[1])
			break
		}
	}
	if env.OVMFCode == "" {
		env.Problems = append(env.Problems, "OVMF firmware not found: install Debian's ovmf (make deps)")
	}

	env.KVMPresent = fileExists(at("dev/kvm"))
	env.KVMUsable, env.KVMReason = kvmVerdict(at, env.KVMPresent)
	for _, mod := range []string{"kvm_intel", "kvm_amd"} {
		if b, err := os.ReadFile(at("sys/module/" + mod + "/parameters/nested")); err == nil {
			env.Nested = strings.TrimSpace(string(b))
		}
	}

	want := o.accel
	source := "WithAccel"
	if want == "" {
		want = ultracloud.Accel(strings.ToLower(strings.TrimSpace(o.getenv(EnvAccel))))
		source = EnvAccel
	}
	switch want {
	case "", ultracloud.AccelAuto:
		if env.KVMUsable {
			env.Accelerator, env.AccelReason = ultracloud.AccelKVM, "auto: KVM usable"
		} else {
			env.Accelerator, env.AccelReason = ultracloud.AccelTCG, "auto: KVM not usable ("+env.KVMReason+")"
		}
	case ultracloud.AccelTCG:
		env.Accelerator, env.AccelReason = ultracloud.AccelTCG, "forced by "+source
	case ultracloud.AccelKVM:
		if !env.KVMPresent {
			return env, fmt.Errorf("%w: %s=kvm but %s does not exist; unset it or use tcg", ErrAccel, source, at("dev/kvm"))
		}
		env.Accelerator, env.AccelReason = ultracloud.AccelKVM, "forced by "+source
		if !env.KVMUsable {
			env.AccelReason += " although " + env.KVMReason
		}
	default:
		return env, fmt.Errorf("%w: %s=%q; use kvm, tcg or auto", ErrAccel, source, want)
	}
	return env, nil
}

// kvmVerdict decides whether KVM can run Linux guests. /dev/kvm alone is not
// enough: PVM (kvm_pvm) exposes it but stock kernels hang or die under it.
func kvmVerdict(at func(string) string, present bool) (bool, string) {
	if !present {
		return false, "/dev/kvm does not exist"
	}
	if fileExists(at("sys/module/kvm_pvm")) {
		return false, "/dev/kvm is PVM (kvm_pvm loaded): stock Linux guests hang or fail under it"
	}
	f, err := os.OpenFile(at("dev/kvm"), os.O_RDWR, 0)
	if err != nil {
		return false, "cannot open /dev/kvm: " + err.Error()
	}
	f.Close()
	for _, mod := range []string{"kvm_intel", "kvm_amd"} {
		if fileExists(at("sys/module/" + mod)) {
			return true, mod + " loaded and /dev/kvm opens read-write"
		}
	}
	return false, "/dev/kvm opens but neither kvm_intel nor kvm_amd is loaded"
}

func qemuVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(line))
}

func memTotalMiB(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb / 1024
		}
	}
	return 0
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
