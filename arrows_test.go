package testkit

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// arrowBlock reads the "package → imports" block of a document.
func arrowBlock(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	re := regexp.MustCompile(`(?m)^(?://\t)?((?:ultracloud|cmd|examples)[\w/<>-]*)\s+→ (.*)$`)
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		var deps []string
		if !strings.HasPrefix(m[2], "(") {
			deps = strings.Split(m[2], ", ")
		}
		slices.Sort(deps)
		out[m[1]] = deps
	}
	if len(out) == 0 {
		t.Fatalf("%s has no import block", file)
	}
	return out
}

// README and doc.go say what `go list` says: each package's imports of
// this module, so the arrows stay one-way and the docs true.
func TestImportArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	const mod = "github.com/photoncloud/testkit/"
	real := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, ":")
		pkg = strings.TrimPrefix(pkg, mod)
		if !strings.HasPrefix(pkg, "ultracloud") && !strings.HasPrefix(pkg, "cmd/") && !strings.HasPrefix(pkg, "examples/") {
			continue
		}
		if strings.HasPrefix(pkg, "examples/") {
			pkg = "examples/<lane>"
		}
		var deps []string
		for _, imp := range strings.Fields(imps) {
			if rel, ok := strings.CutPrefix(imp, mod); ok && !strings.HasPrefix(rel, "internal/") {
				deps = append(deps, rel)
			}
		}
		slices.Sort(deps)
		if prev, ok := real[pkg]; ok && !slices.Equal(prev, deps) {
			t.Errorf("%s: drivers differ in imports: %v vs %v", pkg, prev, deps)
		}
		real[pkg] = deps
	}
	for _, doc := range []string{"doc.go", "README.md"} {
		said := arrowBlock(t, doc)
		for pkg, deps := range real {
			if got, ok := said[pkg]; !ok || !slices.Equal(got, deps) {
				t.Errorf("%s says %s → %v; go list says %v", doc, pkg, got, deps)
			}
		}
		for pkg := range said {
			if _, ok := real[pkg]; !ok {
				t.Errorf("%s names %s, which is no package", doc, pkg)
			}
		}
	}
}
