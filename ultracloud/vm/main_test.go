package vm_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func TestMain(m *testing.M) {
	if os.Getenv(orphanChildEnv) != "" {
		orphanChild() // never returns
	}
	testenv.Main(m)
}

var (
	fixtureOnce sync.Once
	fixtureArts *fixture.Artifacts
	fixtureErr  error
)

// guest returns a direct-kernel config of the fixture guest. The fixture is
// built once per test binary (and cached across binaries).
func guest(t testing.TB, name, cmdline string) vm.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	fixtureOnce.Do(func() {
		fixtureArts, fixtureErr = fixture.Build(context.Background())
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	host, err := vm.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return vm.Config{
		Name: name, Host: host, MemoryMiB: 384,
		Kernel: fixtureArts.Vmlinux, Initrd: fixtureArts.Initrd,
		Cmdline: "console=ttyS0 quiet " + cmdline,
	}
}

func connected(t *testing.T, ctx context.Context, m *vm.Machine) {
	t.Helper()
	if err := m.Shell().Connected(ctx); err != nil {
		t.Fatal(err)
	}
}

var _ = ultracloud.AccelTCG
