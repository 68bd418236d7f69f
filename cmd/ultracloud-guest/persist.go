package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// persistDir is where the persistent disk is mounted: the state a real
// machine keeps across reboots lives under /var/lib.
const persistDir = "/var/lib"

// persistError holds why the persistent disk could not be mounted
// read-write (absent when it was): node-agent reports the node degraded.
const persistError = "/run/ultracloud/persist-error"

// persist mounts the disk whose serial is ultracloud.persist= on /var/lib,
// creating an ext2 filesystem first when it has none (16384 inodes: a
// small inode table is quick to write under TCG), so what is written
// there survives a power-off (the cluster runtime's stop and start boot the
// same disks). Without the argument /var/lib stays in RAM.
func (g *guest) persist() error {
	serial := g.arg("ultracloud.persist")
	if serial == "" {
		return nil
	}
	dev, err := diskBySerial(serial, 10*time.Second)
	if err != nil {
		return err
	}
	fresh := false
	if ok, err := hasExtFS(dev); err != nil {
		return err
	} else if !ok {
		if _, err := g.procs.run("/bin/busybox", "mke2fs", "-q", "-N", "16384", "-L", "ultracloud-state", dev); err != nil {
			return err
		}
		fresh = true
	}
	if err := os.MkdirAll(persistDir, 0o755); err != nil {
		return err
	}
	var merr error
	for _, fs := range []string{"ext4", "ext2"} {
		if merr = syscall.Mount(dev, persistDir, fs, syscall.MS_NOATIME, ""); merr == nil {
			break
		}
	}
	if merr != nil {
		// A disk that fails writes (a journal it cannot replay): mount it
		// read-only without the journal, as a real system keeps its state
		// readable; writes then fail (EROFS) and node-agent reports the
		// node degraded. Unreadable, the node still boots, with the error
		// in persistError for its agents.
		os.MkdirAll(filepath.Dir(persistError), 0o755)
		if rerr := syscall.Mount(dev, persistDir, "ext4", syscall.MS_NOATIME|syscall.MS_RDONLY, "noload"); rerr != nil {
			msg := fmt.Sprintf("mount %s on %s: %v (read-only: %v)", dev, persistDir, merr, rerr)
			os.WriteFile(persistError, []byte(msg+"\n"), 0o644)
			g.marker(ultracloud.PhasePersist, "dev", dev, "dir", persistDir, "error", msg)
			return nil
		}
		msg := fmt.Sprintf("mount %s on %s read-write: %v; mounted read-only", dev, persistDir, merr)
		os.WriteFile(persistError, []byte(msg+"\n"), 0o644)
		g.marker(ultracloud.PhasePersist, "dev", dev, "dir", persistDir, "readonly", "true")
		return nil
	}
	g.marker(ultracloud.PhasePersist, "dev", dev, "dir", persistDir, "created", fmt.Sprint(fresh))
	return nil
}

// diskBySerial finds /dev/<name> whose /sys/block/<name>/serial (virtio)
// or device/serial (SCSI, NVMe) is serial, waiting for the device to probe.
func diskBySerial(serial string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		blocks, _ := filepath.Glob("/sys/block/*")
		for _, b := range blocks {
			for _, f := range []string{"serial", "device/serial"} {
				if raw, err := os.ReadFile(filepath.Join(b, f)); err == nil && strings.TrimSpace(string(raw)) == serial {
					return "/dev/" + filepath.Base(b), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk with serial %q in /sys/block", serial)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hasExtFS reports whether dev starts with an ext2/3/4 superblock (magic
// 0xEF53 at byte 1080).
func hasExtFS(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var b [2]byte
	if _, err := f.ReadAt(b[:], 1080); err != nil {
		return false, fmt.Errorf("read %s: %w", dev, err)
	}
	return binary.LittleEndian.Uint16(b[:]) == 0xEF53, nil
}
