package lanes

import (
	"os"
	"strings"
	"testing"
)

// Every lane the seed document names is in Seed with the seed's own command,
// and every registered lane is one of them.
func TestSeedListMatchesDocument(t *testing.T) {
	doc, err := os.ReadFile("../testdata/testing.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range Seed() {
		if !strings.Contains(string(doc), l.SeedCommand) {
			t.Errorf("%s: seed command %q is not in testing.md", l.Name, l.SeedCommand)
		}
	}
	reg, err := Registry()
	if err != nil {
		t.Fatal(err)
	}
	seed := map[string]string{}
	for _, l := range Seed() {
		seed[l.Name] = l.SeedCommand
	}
	for _, l := range reg.Lanes() {
		if cmd, ok := seed[l.Name]; !ok || cmd != l.SeedCommand {
			t.Errorf("registered lane %q (%q) is not documented as such", l.Name, l.SeedCommand)
		}
	}
}
