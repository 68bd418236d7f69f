package vm_test

import (
	"context"
	"fmt"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

func ExamplePreflight() {
	host, err := vm.Preflight(context.Background(), vm.WithAccel(ultracloud.AccelTCG))
	if err != nil {
		panic(err)
	}
	fmt.Println(host.Accelerator, host.AccelReason)
	// Output: tcg forced by WithAccel
}

// Boot a kernel and initrd under the accelerator the preflight picked, and
// run a command through the NixOS backdoor shell. (Compiled, not run: it
// needs a kernel; see fixture.Build for one.)
func ExampleStart() {
	ctx := context.Background()
	host, _ := vm.Preflight(ctx)
	m, err := vm.Start(ctx, vm.Config{
		Name: "demo", Host: host, MemoryMiB: 512,
		Kernel: "vmlinux", Initrd: "initrd.img", Cmdline: "console=ttyS0",
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	out, err := m.Shell().Succeed(ctx, "uname -r")
	fmt.Println(out, err)
}
