package bootstrap_test

import (
	"fmt"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

func ExampleDisk_Layout() {
	plan, err := bootstrap.ParsePlan([]byte(`{"disk":{"main":{"type":"disk","device":"/dev/vda","content":{"type":"gpt","partitions":{
	  "ESP":{"size":"512M","type":"EF00","content":{"type":"filesystem","format":"vfat","mountpoint":"/boot"}},
	  "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}}}}}}`))
	if err != nil {
		panic(err)
	}
	ext, _ := plan.Disks[0].Layout(20 << 30)
	for _, e := range ext {
		fmt.Println(e.Index, e.Label, e.FirstLBA, e.LastLBA)
	}
	// Output:
	// 1 disk-main-ESP 2048 1050623
	// 2 disk-main-root 1050624 41940991
}
