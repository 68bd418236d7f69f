package ultracloud

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// seedDoc returns the platform's testing document. The repository keeps a
// copy in testdata; when the shared seed is checked out beside the repo the
// copy must match it, so the tests always read the spec itself.
func seedDoc(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("testdata/testing.md")
	if err != nil {
		t.Fatal(err)
	}
	if shared, err := os.ReadFile("../../shared/seed/testing.md"); err == nil && !bytes.Equal(shared, doc) {
		t.Fatalf("ultracloud/testdata/testing.md differs from ../shared/seed/testing.md; copy the seed over it")
	}
	return doc
}

type seedRow struct {
	name                        string
	outputs, required, optional string
}

// seedProfiles parses the "Canonical Profiles" table.
func seedProfiles(t *testing.T) []seedRow {
	t.Helper()
	doc := string(seedDoc(t))
	start := strings.Index(doc, "## Canonical Profiles")
	if start < 0 {
		t.Fatal("seed has no '## Canonical Profiles' section")
	}
	var rows []seedRow
	for _, line := range strings.Split(doc[start:], "\n")[1:] {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 4 {
			t.Fatalf("profile row with %d cells: %q", len(cells), line)
		}
		rows = append(rows, seedRow{strings.Trim(cells[0], "`"), cells[1], cells[2], cells[3]})
	}
	if len(rows) != 3 {
		t.Fatalf("seed table has %d profiles, want 3", len(rows))
	}
	return rows
}

var ticks = regexp.MustCompile("`([^`]+)`")

func ticked(cell string) []string {
	var out []string
	for _, m := range ticks.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestProfilesMatchSeedTable(t *testing.T) {
	rows := seedProfiles(t)
	profiles := Profiles()
	if len(profiles) != len(rows) {
		t.Fatalf("%d profiles, seed has %d", len(profiles), len(rows))
	}
	for i, row := range rows {
		p := profiles[i]
		t.Run(row.name, func(t *testing.T) {
			if string(p.Name) != row.name {
				t.Fatalf("profile %d is %q, seed says %q", i, p.Name, row.name)
			}
			var outs []string
			for _, o := range ticked(row.outputs) {
				if !strings.ContainsAny(o, ". ") { // "`node02`" continues nixosConfigurations.
					o = "nixosConfigurations." + o
				}
				outs = append(outs, o)
			}
			if !slices.Equal(p.Outputs, outs) {
				t.Errorf("outputs\n got %q\nseed %q", p.Outputs, outs)
			}
			if got, want := names(p.Required), ticked(row.required); !slices.Equal(got, want) {
				t.Errorf("required\n got %q\nseed %q", got, want)
			}
			if got, want := names(p.Optional), ticked(row.optional); !slices.Equal(got, want) {
				t.Errorf("optional\n got %q\nseed %q", got, want)
			}
			for _, c := range p.Required {
				phrase := map[Placement]string{
					OnControlPlane:  "`" + c.Name + "` on every control-plane node",
					OnBootstrapNode: "`" + c.Name + "` on the bootstrap node",
				}[c.Placement]
				if phrase != "" && !strings.Contains(row.required, phrase) {
					t.Errorf("%s has placement %q but the seed does not say %q", c.Name, c.Placement, phrase)
				}
			}
		})
	}
}

func TestComponentUnitAndProbe(t *testing.T) {
	p, err := LookupProfile(SingleNodeDev)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.Component("chainfire")
	if !ok || c.Unit() != "chainfire.service" || c.Probe != nil {
		t.Fatalf("chainfire: %+v ok=%v unit=%s", c, ok, c.Unit())
	}
	c2 := c.WithProbe(Probe{HTTP: "http://127.0.0.1:1234/health"})
	if c.Probe != nil || c2.Probe == nil || c2.Probe.HTTP == "" {
		t.Fatal("WithProbe must copy")
	}
	if _, err := LookupProfile("two-node"); err == nil || !strings.Contains(err.Error(), "single-node dev") {
		t.Fatalf("unknown profile error should list the known ones: %v", err)
	}
}
