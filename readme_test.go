package testkit

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's Go snippets compile against this module as it is (through
// a build overlay: nothing is written into the tree).
func TestReadmeSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles packages")
	}
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(snippets) == 0 {
		t.Fatal("README has no Go snippet")
	}
	wd, _ := os.Getwd()
	tmp := t.TempDir()
	for i, m := range snippets {
		src := m[1]
		if !strings.HasPrefix(src, "package ") {
			// A fragment: a lane function over the SDK's packages.
			src = `package readme

import (
	"context"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

var _ = time.Second

` + src
		}
		dir := filepath.Join(wd, "internal", fmt.Sprintf("readme%d", i))
		file := filepath.Join(tmp, fmt.Sprintf("snippet%d.go", i))
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		ov, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(dir, "snippet.go"): file}})
		ovFile := filepath.Join(tmp, fmt.Sprintf("overlay%d.json", i))
		os.WriteFile(ovFile, ov, 0o644)
		out, err := exec.Command("go", "build", "-overlay", ovFile, "-o", os.DevNull, "./internal/"+filepath.Base(dir)).CombinedOutput()
		if err != nil {
			t.Errorf("README snippet %d does not compile: %v\n%s\n%s", i+1, err, out, src)
		}
	}
}
