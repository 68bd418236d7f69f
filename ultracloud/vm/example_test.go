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
