package image

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

// A gzip bomb stops at the bound instead of expanding.
func TestReadInitramfsGzipBomb(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(make([]byte, 8<<20))
	zw.Close()
	_, err := ReadInitramfs(buf.Bytes(), MaxExpanded(1<<20))
	if err == nil || !strings.Contains(err.Error(), "expands past 1048576 bytes") {
		t.Fatalf("8 MiB of zeros under a 1 MiB bound: %v", err)
	}
	if DefaultMaxInitramfs > 1<<30 {
		t.Fatalf("default bound %d is not sane", DefaultMaxInitramfs)
	}
}
