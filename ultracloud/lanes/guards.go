package lanes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

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
	// Config names a nixosConfiguration: at run time the target becomes
	// one target per output of SystemOutputs the configuration defines
	// (its toplevel keeps the configuration's name, the others are named
	// "CONFIG OUTPUT"); Eval and Build are then ignored.
	Config string
}

// SystemOutputs are the config.system.build outputs the testing document
// says the guards realise, where a configuration defines them: the system
// (toplevel), the VM runner (vm), the ISO (isoImage) and the netboot
// kernel and initrd (kernel, netbootRamdisk).
var SystemOutputs = []string{"toplevel", "vm", "isoImage", "kernel", "netbootRamdisk"}

// CanonicalTargets lists every canonical profile output of the testing
// document as flake attributes: each nixosConfigurations.X (its system
// outputs, see SystemOutputs),
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
	nixos := func(name string) GuardTarget { return GuardTarget{Name: name, Config: name} }
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

// CanonicalProfileEvalGuards forces evaluation of every canonical output
// (for each nixosConfiguration every output of SystemOutputs it defines),
// in parallel, fail-first: the first failure cancels the rest and is
// reported with nix's stderr.
func CanonicalProfileEvalGuards(ctx context.Context, cfg ultracloud.RunConfig, o GuardOptions) (*ultracloud.Report, error) {
	o.fill()
	return guardReport(ctx, "canonical-profile-eval-guards", cfg, o, func(t GuardTarget) checks.Check {
		return checks.NixEval{Flake: o.Flake, Attr: t.Eval, Nix: o.Nix}
	})
}

// CanonicalProfileBuildGuards realises every canonical derivation output
// (for each nixosConfiguration: system, VM runner, ISO, netboot kernel and
// initrd where defined), in parallel, fail-first.
func CanonicalProfileBuildGuards(ctx context.Context, cfg ultracloud.RunConfig, o GuardOptions) (*ultracloud.Report, error) {
	o.fill()
	return guardReport(ctx, "canonical-profile-build-guards", cfg, o, func(t GuardTarget) checks.Check {
		if t.Build == "" {
			return nil
		}
		return checks.NixBuild{Flake: o.Flake, Attr: t.Build, Nix: o.Nix}
	})
}

// expandTargets turns each Config target into one target per system
// output its configuration defines, asking nix once for all of them. A
// configuration the flake lacks keeps its toplevel target, whose
// evaluation then fails naming it.
func expandTargets(ctx context.Context, o GuardOptions) ([]GuardTarget, error) {
	var names []string
	for _, t := range o.Targets {
		if t.Config != "" {
			names = append(names, strconv.Quote(t.Config))
		}
	}
	defined := map[string][]string{}
	if len(names) > 0 {
		outs := make([]string, len(SystemOutputs))
		for i, a := range SystemOutputs {
			outs[i] = strconv.Quote(a)
		}
		apply := "cs: builtins.mapAttrs (n: c: builtins.filter (a: builtins.hasAttr a c.config.system.build) [ " +
			strings.Join(outs, " ") + " ]) (builtins.intersectAttrs (builtins.listToAttrs (map (n: { name = n; value = null; }) [ " +
			strings.Join(names, " ") + " ])) cs)"
		var out string
		ev := checks.NixEval{Flake: o.Flake, Attr: "nixosConfigurations", Nix: o.Nix, JSON: true, Apply: apply, Output: &out}
		if err := ev.Run(ctx); err != nil {
			return nil, fmt.Errorf("listing the system outputs of %d configurations: %w", len(names), err)
		}
		if err := json.Unmarshal([]byte(out), &defined); err != nil {
			return nil, fmt.Errorf("listing the system outputs: %w", err)
		}
	}
	var targets []GuardTarget
	for _, t := range o.Targets {
		if t.Config == "" {
			targets = append(targets, t)
			continue
		}
		outs, ok := defined[t.Config]
		if !ok {
			outs = []string{"toplevel"}
		}
		for _, a := range outs {
			attr := "nixosConfigurations." + t.Config + ".config.system.build." + a
			name := t.Name
			if a != "toplevel" {
				name += " " + a
			}
			targets = append(targets, GuardTarget{Name: name, Eval: attr + ".drvPath", Build: attr})
		}
	}
	return targets, nil
}

func guardReport(ctx context.Context, lane string, cfg ultracloud.RunConfig, o GuardOptions, check func(GuardTarget) checks.Check) (*ultracloud.Report, error) {
	return Execute(ctx, cfg, Spec{Name: lane}, func(ctx context.Context, r *Run) error {
		started := time.Now()
		targets, err := expandTargets(ctx, o)
		r.Record("", "system outputs", started, time.Now(), err)
		if err != nil {
			return err
		}
		var cs []checks.Check
		for _, t := range targets {
			if c := check(t); c != nil {
				cs = append(cs, c)
			}
		}
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
