package testkit

import (
	"os/exec"
	"strings"
	"testing"
)

// PID 1 of the fixture links no host-only code: no phone-home server, no
// bbolt state database, no ISO writer or reader. (crypto/x509 stays: the
// guest speaks HTTP, and net/http imports crypto/tls.)
func TestGuestLinksNoHostCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/ultracloud-guest").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/bbolt", "github.com/diskfs/go-diskfs/filesystem/iso9660", "ultracloud/deployer", "ultracloud/image/iso"} {
			if strings.HasPrefix(dep, banned) || strings.HasSuffix(dep, banned) {
				t.Errorf("the guest links %s", dep)
			}
		}
	}
}
