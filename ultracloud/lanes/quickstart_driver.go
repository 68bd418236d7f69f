package lanes

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// KeepQuickstartVM reports whether the quickstart VM is to be kept after a
// pass: cfg.KeepVMs, or ULTRACLOUD_QUICKSTART_KEEP_VM=1 as in the seed.
func KeepQuickstartVM(cfg ultracloud.RunConfig) bool {
	return cfg.KeepVMs || os.Getenv(EnvKeepQuickstartVM) == "1"
}

// RunQuickstart is the driver of single-node-quickstart that
// examples/single-node-quickstart and `ultracloud quickstart` share. It
// runs the lane like Run; when the VM is kept (KeepQuickstartVM) and the
// lane passed, it prints how to reach the VM and runs the commands read
// from in inside it until in ends, then stops the VM.
func RunQuickstart(ctx context.Context, cfg ultracloud.RunConfig, o RunOptions, in io.Reader) (*ultracloud.Report, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	cfg.KeepVMs = KeepQuickstartVM(cfg)
	var kept *vm.Machine
	lane := ultracloud.Lane{Name: "single-node-quickstart", Requires: ultracloud.TCGOK,
		Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
			return SingleNodeQuickstart(ctx, cfg, QuickstartOptions{Kept: func(m *vm.Machine) { kept = m }})
		}}
	r, err := Run(ctx, lane, cfg, o)
	if kept == nil {
		return r, err
	}
	defer kept.Close()
	fmt.Fprintf(o.Out, "\nVM %s kept alive (%s=1; accelerator %s).\n"+
		"  console log:       %s\n  QEMU command line: %s\n  machine dir:       %s\n"+
		"Type commands to run them in the guest (e.g. systemctl status chainfire); end input (Ctrl-D) to stop the VM.\n",
		kept.Name(), EnvKeepQuickstartVM, cfg.Host.Accelerator, kept.Console().LogPath(), kept.Dir()+"/qemu-cmdline", kept.Dir())
	if ierr := Interact(ctx, kept, in, o.Out); ierr != nil && err == nil {
		fmt.Fprintln(o.Out, "shell:", ierr)
	}
	return r, err
}
