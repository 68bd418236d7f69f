package lanes

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/checks"
)

// GuardTarget is one canonical output a regression guard evaluates (and,
// for derivations, builds).
type GuardTarget struct {
	// Name is how the testing document names it.
	Name string
	// Eval is the attribute evaluated with --raw (a drvPath or a string).
	Eval string
	// Build is the attribute built; empty for outputs that are not
	// derivations (apps).
	Build string
}

// CanonicalTargets lists every canonical profile output of the testing
// document as flake attributes: each nixosConfigurations.X (its toplevel),
// the image components (netboot-*), the quickstart app and the checks.
func CanonicalTargets() []GuardTarget {
	var out []GuardTarget
	seen := map[string]bool{}
	add := func(t GuardTarget) {
		if !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	nixos := func(name string) GuardTarget {
		attr := "nixosConfigurations." + name + ".config.system.build.toplevel"
		return GuardTarget{Name: name, Eval: attr + ".drvPath", Build: attr}
	}
	for _, p := range ultracloud.Profiles() {
		for _, o := range p.Outputs {
			switch {
			case strings.HasPrefix(o, "nixosConfigurations."):
				add(nixos(strings.TrimPrefix(o, "nixosConfigurations.")))
			case strings.HasPrefix(o, "checks."):
				add(GuardTarget{Name: strings.TrimPrefix(o, "checks.x86_64-linux."), Eval: o + ".drvPath", Build: o})
			case strings.HasPrefix(o, "nix run .#"):
				app := strings.TrimPrefix(o, "nix run .#")
				add(GuardTarget{Name: app + " (app)", Eval: "apps.x86_64-linux." + app + ".program"})
			}
		}
		for _, c := range slices.Concat(p.Required, p.Optional) {
			if c.Kind == ultracloud.KindImage {
				add(nixos(c.Name))
			}
		}
	}
	return out
}

// GuardOptions configure the regression guards.
type GuardOptions struct {
	// Flake is the flake reference (default ".").
	Flake string
	// Limit is how many nix processes run at once (default 4).
	Limit int
	// Nix is the nix binary (default nix).
	Nix string
	// Targets default to CanonicalTargets.
	Targets []GuardTarget
}

func (o *GuardOptions) fill() {
	if o.Flake == "" {
		o.Flake = "."
	}
	if o.Limit <= 0 {
		o.Limit = 4
	}
	if o.Targets == nil {
		o.Targets = CanonicalTargets()
	}
}

// CanonicalProfileEvalGuards forces evaluation of every canonical output,
// in parallel, fail-first: the first failure cancels the rest and is
// reported with nix's stderr.
func CanonicalProfileEvalGuards(ctx context.Context, cfg ultracloud.RunConfig, o GuardOptions) (*ultracloud.Report, error) {
	o.fill()
	var cs []checks.Check
	for _, t := range o.Targets {
		cs = append(cs, checks.NixEval{Flake: o.Flake, Attr: t.Eval, Nix: o.Nix})
	}
	return guardReport(ctx, "canonical-profile-eval-guards", cfg, o, cs)
}

// CanonicalProfileBuildGuards realises every canonical derivation output,
// in parallel, fail-first.
func CanonicalProfileBuildGuards(ctx context.Context, cfg ultracloud.RunConfig, o GuardOptions) (*ultracloud.Report, error) {
	o.fill()
	var cs []checks.Check
	for _, t := range o.Targets {
		if t.Build != "" {
			cs = append(cs, checks.NixBuild{Flake: o.Flake, Attr: t.Build, Nix: o.Nix})
		}
	}
	return guardReport(ctx, "canonical-profile-build-guards", cfg, o, cs)
}

func guardReport(ctx context.Context, lane string, cfg ultracloud.RunConfig, o GuardOptions, cs []checks.Check) (*ultracloud.Report, error) {
	return Execute(ctx, cfg, Spec{Name: lane}, func(ctx context.Context, r *Run) error {
		results, first := checks.RunFailFirst(ctx, o.Limit, cs...)
		for _, res := range results {
			if errors.Is(res.Err, checks.ErrCancelled) {
				r.Skip("", res.Name, res.Err.Error())
				continue
			}
			r.Record("", res.Name, res.Started, res.Finished, res.Err)
		}
		return first
	})
}
