package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	testenv.Main(m)
}

// `ultracloud quickstart` in a pipe: a line per component, and the seed's
// ULTRACLOUD_QUICKSTART_KEEP_VM=1 keeps the VM, says how to reach it and
// runs what is typed on stdin inside it.
func TestQuickstartKeepVMInAPipe(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	t.Setenv(lanes.EnvKeepQuickstartVM, "1")
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader("hostname\nsystemctl is-active chainfire\ncat /proc/cpuinfo | grep -c ^processor\n"))
	root.SetArgs([]string{"quickstart", "--work-dir", t.TempDir()})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	for _, c := range []string{"chainfire", "flaredb", "iam", "plasmavmc", "prismnet"} {
		if !strings.Contains(errb.String(), c+" ") || !strings.Contains(errb.String(), "unit "+c+".service: active, probe ok") {
			t.Errorf("no progress line for %s", c)
		}
	}
	if !strings.Contains(errb.String(), "2 vCPU, 2048 MiB") {
		t.Errorf("the VM is not the topology's 2 vCPU / 2048 MiB")
	}
	o := out.String()
	for _, want := range []string{"kept alive", "console log:", "qemu-cmdline", "quickstart\n", "active\n", "2\n"} {
		if !strings.Contains(o, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
}
