package bootstrap

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
)

// BenchmarkApply compares Layout+Apply with what disko runs (sgdisk per
// partition, then mkfs.vfat and mkfs.ext4 at the partitions' offsets) on the
// same plan and disk size, in one run:
//
//	go test -bench Apply -run '^$' ./ultracloud/bootstrap
func BenchmarkApply(b *testing.B) {
	const size = 2 << 30
	b.Run("testkit", func(b *testing.B) {
		for range b.N {
			p := loadPlan(b, "esp-root.json")
			img := sparse(b, size)
			if _, err := p.Apply(context.Background(), map[string]string{"main": img}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sgdisk+mkfs", func(b *testing.B) {
		need(b, "sgdisk", "mkfs.vfat", "mkfs.ext4")
		for range b.N {
			p := loadPlan(b, "esp-root.json")
			d := &p.Disks[0]
			img := sparse(b, size)
			for _, args := range sgdiskCommands(d) {
				if out, err := exec.Command("sgdisk", append(args, img)...).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, out)
				}
			}
			ext, _ := d.Layout(size)
			esp, root := ext[0], ext[1]
			cmds := [][]string{
				{"mkfs.vfat", "-F", "32", fmt.Sprintf("--offset=%d", esp.FirstLBA), img, fmt.Sprint(esp.Bytes() / 1024)},
				{"mkfs.ext4", "-F", "-q", "-E", fmt.Sprintf("offset=%d", root.Offset()), img, fmt.Sprintf("%dk", root.Bytes()/1024)},
			}
			for _, c := range cmds {
				if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
					b.Fatalf("%v: %v %s", c, err, out)
				}
			}
		}
	})
}

// BenchmarkVerify10GiB verifies a plan against a 10 GiB sparse image.
func BenchmarkVerify10GiB(b *testing.B) {
	p := loadPlan(b, "esp-swap-root.json")
	img := sparse(b, 10<<30)
	if _, err := p.Apply(context.Background(), map[string]string{"main": img}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		diff, err := p.Verify(context.Background(), map[string]string{"main": img})
		if err != nil || len(diff) != 0 {
			b.Fatal(err, diff)
		}
	}
}
