package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

// This host, whatever kind it is: only invariants that hold on every host
// kind. Host kinds themselves (PVM /dev/kvm, kvm_pvm without /dev/kvm, real
// KVM, …) are the fake-host-root cases of TestPreflightVerdicts.
func TestPreflightThisHost(t *testing.T) {
	env, err := Preflight(context.Background(), WithGetenv(func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", env)
	if env.KVMReason == "" || env.AccelReason == "" {
		t.Fatalf("verdicts must carry reasons: kvm %q accel %q", env.KVMReason, env.AccelReason)
	}
	if want := map[bool]ultracloud.Accel{true: ultracloud.AccelKVM, false: ultracloud.AccelTCG}[env.KVMUsable]; env.Accelerator != want {
		t.Fatalf("auto with usable=%v picked %s, want %s", env.KVMUsable, env.Accelerator, want)
	}
	if env.KVMUsable && !env.KVMPresent {
		t.Fatalf("usable KVM without /dev/kvm: %+v", env)
	}
	if env.CPUs < 1 || env.MemoryMiB < 1 {
		t.Fatalf("cpus %d mem %d", env.CPUs, env.MemoryMiB)
	}
	if env.QEMU != "" && !strings.Contains(env.QEMUVersion, "QEMU emulator version") {
		t.Fatalf("qemu version %q", env.QEMUVersion)
	}
}

// fakeHost lays out the files preflight reads, as another host would have them.
func fakeHost(t *testing.T, files ...string) string {
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if strings.HasSuffix(f, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("Y\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPreflightVerdicts(t *testing.T) {
	cases := []struct {
		name      string
		files     []string
		env       string
		accel     ultracloud.Accel
		usable    bool
		reason    string
		errIs     error
		wantAccel ultracloud.Accel
	}{
		{name: "no kvm", files: nil, usable: false, reason: "does not exist", wantAccel: ultracloud.AccelTCG},
		{name: "kvm_pvm loaded, no /dev/kvm", files: []string{"sys/module/kvm_pvm/", "sys/module/kvm/"}, reason: "does not exist", wantAccel: ultracloud.AccelTCG},
		{name: "pvm", files: []string{"dev/kvm", "sys/module/kvm_pvm/", "sys/module/kvm/"}, reason: "PVM", wantAccel: ultracloud.AccelTCG},
		{name: "intel", files: []string{"dev/kvm", "sys/module/kvm_intel/parameters/nested"}, usable: true, reason: "kvm_intel", wantAccel: ultracloud.AccelKVM},
		{name: "no vendor module", files: []string{"dev/kvm"}, reason: "neither", wantAccel: ultracloud.AccelTCG},
		{name: "env forces tcg", files: []string{"dev/kvm", "sys/module/kvm_amd/"}, env: "tcg", usable: true, reason: "kvm_amd", wantAccel: ultracloud.AccelTCG},
		{name: "env forces kvm on pvm", files: []string{"dev/kvm", "sys/module/kvm_pvm/"}, env: "KVM", reason: "PVM", wantAccel: ultracloud.AccelKVM},
		{name: "option beats env", files: []string{"dev/kvm", "sys/module/kvm_intel/"}, env: "kvm", accel: ultracloud.AccelTCG, usable: true, reason: "kvm_intel", wantAccel: ultracloud.AccelTCG},
		{name: "kvm forced without device", env: "kvm", reason: "does not exist", errIs: ErrAccel},
		{name: "bad value", env: "hvf", reason: "does not exist", errIs: ErrAccel},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []PreflightOption{
				WithHostRoot(fakeHost(t, tc.files...)),
				WithGetenv(func(k string) string {
					if k == EnvAccel {
						return tc.env
					}
					return ""
				}),
			}
			if tc.accel != "" {
				opts = append(opts, WithAccel(tc.accel))
			}
			env, err := Preflight(context.Background(), opts...)
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) || !strings.Contains(err.Error(), EnvAccel) {
					t.Fatalf("want %v naming %s, got %v", tc.errIs, EnvAccel, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if env.KVMUsable != tc.usable || !strings.Contains(env.KVMReason, tc.reason) || env.Accelerator != tc.wantAccel {
				t.Fatalf("usable=%v reason=%q accel=%s (%s)", env.KVMUsable, env.KVMReason, env.Accelerator, env.AccelReason)
			}
			if len(env.Problems) == 0 || !strings.Contains(strings.Join(env.Problems, ";"), "OVMF") {
				t.Fatalf("fake host has no OVMF; problems %q", env.Problems)
			}
		})
	}
}

func TestPreflightOVMFFromEnv(t *testing.T) {
	dir := t.TempDir()
	code, vars := filepath.Join(dir, "CODE.fd"), filepath.Join(dir, "VARS.fd")
	os.WriteFile(code, []byte("c"), 0o644)
	os.WriteFile(vars, []byte("v"), 0o644)
	env := map[string]string{EnvOVMFCode: code, EnvOVMFVars: vars}
	h, err := Preflight(context.Background(), WithHostRoot(fakeHost(t)), WithGetenv(func(k string) string { return env[k] }))
	if err != nil || h.OVMFCode != code || h.OVMFVars != vars {
		t.Fatalf("%+v %v", h, err)
	}
	env[EnvOVMFVars] = filepath.Join(dir, "missing.fd")
	if _, err := Preflight(context.Background(), WithHostRoot(fakeHost(t)), WithGetenv(func(k string) string { return env[k] })); err == nil || !strings.Contains(err.Error(), EnvOVMFVars) {
		t.Fatalf("missing vars: %v", err)
	}
}
