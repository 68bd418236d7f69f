package testsummary

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A real go test run of a small module with a passing, a failing, a
// skipped and a cut-off test: the summary names each as it ended.
func TestSummarizeRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.22\n")
	write("m_test.go", `package m

import (
	"testing"
	"time"
)

func TestPasses(t *testing.T) { t.Log("fine") }
func TestFails(t *testing.T)  { t.Log("context line"); t.Fatal("the reason") }
func TestSkips(t *testing.T)  { t.Skip("not here") }
func TestParent(t *testing.T) {
	t.Log("parent line")
	t.Run("leaf", func(t *testing.T) { t.Fatal("the leaf's reason") })
}
func TestHangs(t *testing.T)  { time.Sleep(time.Minute) }
`)
	cmd := exec.Command("go", "test", "-json", "-timeout", "3s", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	raw, _ := cmd.Output()
	var out bytes.Buffer
	res, err := Summarize(bytes.NewReader(raw), &out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Log(s)
	for _, want := range []string{"FAIL\texample.com/m", "the reason", "==== test summary ====",
		"still running when their package ended", "TestHangs", "last lines of failed example.com/m TestFails", "context line"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The parent names its failed subtest; the leaf, with its reason,
	// comes after it, nearer the end.
	parent := strings.Index(s, "failed example.com/m TestParent (")
	leaf := strings.Index(s, "last lines of failed example.com/m TestParent/leaf")
	if parent < 0 || leaf < parent || !strings.Contains(s[parent:], "with its subtests TestParent/leaf") || !strings.Contains(s[leaf:], "the leaf's reason") {
		t.Errorf("parent at %d, leaf at %d: want the parent naming its leaf first, then the leaf's reason", parent, leaf)
	}
	if res.Failed != 3 || res.Skipped != 1 || res.FailedPackages != 1 || res.Tests != 6 {
		t.Errorf("counts %+v, want 6 tests: 3 failed, 1 skipped, 1 failed package", res)
	}
}

func TestSummarizeCopiesNonJSON(t *testing.T) {
	in := "# example.com/m\n./m.go:3:1: syntax error\n" +
		`{"Action":"output","Package":"example.com/m","Output":"FAIL\texample.com/m [build failed]\n"}` + "\n" +
		`{"Action":"fail","Package":"example.com/m","Elapsed":0}` + "\n"
	var out bytes.Buffer
	res, err := Summarize(strings.NewReader(in), &out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "syntax error") || !strings.Contains(out.String(), "[build failed]") || res.FailedPackages != 1 {
		t.Fatalf("%+v\n%s", res, out.String())
	}
}

func FuzzSummarize(f *testing.F) {
	f.Add([]byte(`{"Action":"run","Package":"p","Test":"T"}` + "\n" + `{"Action":"fail","Package":"p","Test":"T/x","Elapsed":1}`))
	f.Add([]byte("not json\n{\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if _, err := Summarize(bytes.NewReader(in), &out, Options{Slowest: 3, TailLines: 2}); err != nil && len(in) < 1<<20 {
			t.Fatal(err)
		}
	})
}
