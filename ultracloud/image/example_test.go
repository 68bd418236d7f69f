package image_test

import (
	"fmt"

	"github.com/photoncloud/testkit/ultracloud/image"
)

func ExampleNewInitramfs() {
	ird := image.NewInitramfs()
	ird.AddFile("init", []byte("#!/bin/sh\n"), 0o755)
	ird.AddSymlink("bin/sh", "busybox")
	ird.AddCharDev("dev/console", 0o600, 5, 1)
	data, _ := ird.Bytes(false)
	entries, _ := image.ReadInitramfs(data)
	for _, e := range entries {
		fmt.Println(e.Path, e.Mode)
	}
	// Output:
	// bin drwxr-xr-x
	// bin/sh Lrwxrwxrwx
	// dev drwxr-xr-x
	// dev/console Dcrw-------
	// init -rwxr-xr-x
}
