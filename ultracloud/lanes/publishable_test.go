package lanes

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Without usable KVM (a host root with no /dev/kvm) the suite writes
// environment.json and stops at preflight with ErrNoKVM, naming
// --allow-tcg; nothing boots.
func TestPublishableStopsAtPreflight(t *testing.T) {
	ctx := context.Background()
	host, err := vm.Preflight(ctx, vm.WithHostRoot(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if host.KVMUsable || host.KVMPresent {
		t.Fatalf("a host root without /dev/kvm: %+v", host)
	}
	dir := filepath.Join(t.TempDir(), "suite")
	r, err := PublishableKVMSuite(ctx, ultracloud.RunConfig{Host: host, WorkDir: dir}, PublishableOptions{})
	if !errors.Is(err, ErrNoKVM) || r != nil || !strings.Contains(err.Error(), "--allow-tcg") {
		t.Fatalf("report %v, err %v; want ErrNoKVM naming --allow-tcg", r, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "environment.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env Environment
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	if env.Host.KVMUsable || env.Host.KVMReason == "" || env.KVMDevice != "" || env.CPUModel == "" || env.QEMUVersion == "" || env.AllowTCG {
		t.Fatalf("environment.json: %s", raw)
	}
	// The testkit's commit: from the build's VCS stamps, else from the
	// checkout the test runs in (CI clones the repository).
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && !strings.HasPrefix(env.TestkitCommit, strings.TrimSpace(string(head))) {
		t.Fatalf("testkitCommit %q, want the checkout's %s", env.TestkitCommit, head)
	}
	if _, err := os.Stat(filepath.Join(dir, "report")); !os.IsNotExist(err) {
		t.Fatalf("a report was started: %v", err)
	}
}

func TestPublishableArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"DIR"}, []string{"-work-dir", "DIR", "-junit-dir", "DIR"}},
		{[]string{"DIR", "-allow-tcg"}, []string{"-work-dir", "DIR", "-junit-dir", "DIR", "-allow-tcg"}},
		{[]string{"-allow-tcg"}, []string{"-allow-tcg"}},
		{nil, nil},
	} {
		if got := PublishableArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}
