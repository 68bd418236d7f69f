package bootstrap

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeBundle(t testing.TB, systemID string, files map[string]string) *Bundle {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	b, err := PackBundle(context.Background(), dir, systemID, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func systemBundle(t *testing.T) *Bundle {
	return writeBundle(t, "sys-42", map[string]string{
		"esp/EFI/BOOT/BOOTX64.EFI":      "pretend systemd-boot",
		"esp/loader/loader.conf":        "default ultracloud.conf\ntimeout 0\n",
		"esp/ultracloud/vmlinuz":        strings.Repeat("K", 3<<20),
		"root/etc/ultracloud/system-id": "sys-42\n",
		"root/etc/os-release":           "ID=ultracloud\n",
	})
}
