package lanes

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/testkit/ultracloud"
)

func TestDriverMain(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), "no-such-lane", nil, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown lane") {
		t.Fatalf("unknown lane: %d %s", code, errb.String())
	}
	flake := guardFlake(t)
	junitDir := t.TempDir()
	t.Setenv("out", junitDir)
	t.Setenv(EnvFlake, "")
	code := Main(context.Background(), "canonical-profile-eval-guards", []string{"-e2e", "-flake", flake, "-work-dir", t.TempDir()}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	data, err := os.ReadFile(filepath.Join(junitDir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var j ultracloud.JUnitSuites
	if err := xml.Unmarshal(data, &j); err != nil || j.Tests < 10 || j.Failures != 0 {
		t.Fatalf("junit %+v %v", j, err)
	}
	broken := guardFlake(t, `mk "baremetal-iso-e2e"`, `throw "e2e broken"`)
	if code := Main(context.Background(), "canonical-profile-eval-guards", []string{"-flake", broken, "-work-dir", t.TempDir()}, nil, &out, &errb); code != 1 {
		t.Fatalf("broken flake exits %d, want 1", code)
	}
}
