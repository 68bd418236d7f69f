package vm

import (
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

func TestCommandLineAccel(t *testing.T) {
	for _, tc := range []struct {
		accel  ultracloud.Accel
		single bool
		want   string
	}{
		{ultracloud.AccelTCG, false, "-machine q35 -accel tcg -cpu max"},
		{ultracloud.AccelTCG, true, "-machine q35 -accel tcg,thread=single -cpu max"},
		{ultracloud.AccelKVM, true, "-machine q35 -accel kvm -cpu host"},
	} {
		c := &Config{Name: "x", Host: ultracloud.HostEnv{Accelerator: tc.accel}, SingleThreadTCG: tc.single, VCPUs: 2, MemoryMiB: 512}
		got := strings.Join(commandLine(c, paths{qmp: "q", shell: "s"}), " ")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s single=%v: %s lacks %q", tc.accel, tc.single, got, tc.want)
		}
		if !strings.Contains(got, "-smp 2") {
			t.Errorf("the guest keeps its vCPUs: %s", got)
		}
	}
}
