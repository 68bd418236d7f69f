package lanes

import (
	"context"
	"os"

	"github.com/photoncloud/testkit/ultracloud"
)

// Documented is a lane the platform's testing document names, with the
// command it gives for it.
type Documented struct {
	Name        string
	SeedCommand string
}

// Seed lists every lane the testing document names, in its order.
func Seed() []Documented {
	const cluster = "nix run ./nix/test-cluster#cluster -- "
	const check = "nix build .#checks.x86_64-linux."
	return []Documented{
		{"single-node-quickstart", "nix run .#single-node-quickstart"},
		{"baremetal-iso", cluster + "baremetal-iso"},
		{"baremetal-iso-e2e", check + "baremetal-iso-e2e"},
		{"canonical-profile-eval-guards", check + "canonical-profile-eval-guards"},
		{"canonical-profile-build-guards", check + "canonical-profile-build-guards"},
		{"portable-control-plane-regressions", check + "portable-control-plane-regressions"},
		{"deployer-vm-smoke", check + "deployer-vm-smoke"},
		{"fresh-smoke", cluster + "fresh-smoke"},
		{"fresh-demo-vm-webapp", cluster + "fresh-demo-vm-webapp"},
		{"fresh-matrix", cluster + "fresh-matrix"},
		{"fresh-bench-storage", cluster + "fresh-bench-storage"},
	}
}

// EnvFlake is the flake the guard lanes evaluate (default ".").
const EnvFlake = "ULTRACLOUD_FLAKE"

// Registry returns a new registry holding every lane that runs today. Lanes
// the testing document names but this release cannot run are absent: see
// Seed for the full list.
func Registry() (*ultracloud.Registry, error) {
	return ultracloud.NewRegistry(all()...)
}

// all lists the implemented lanes.
func all() []ultracloud.Lane {
	const cluster = "nix run ./nix/test-cluster#cluster -- "
	const check = "nix build .#checks.x86_64-linux."
	baremetal := func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
		return BaremetalISO(ctx, cfg, BaremetalOptions{})
	}
	flake := func() GuardOptions { return GuardOptions{Flake: os.Getenv(EnvFlake)} }
	return []ultracloud.Lane{
		{Name: "single-node-quickstart", Summary: "one-box quickstart: chainfire, flaredb, iam, plasmavmc, prismnet ready from inside the guest",
			SeedCommand: "nix run .#single-node-quickstart", Topology: ultracloud.TopologySingleNodeQuickstart, Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return SingleNodeQuickstart(ctx, cfg, QuickstartOptions{})
			}},
		{Name: "deployer-vm-smoke", Summary: "a node activates a host-built closure from the deployer without building anything",
			SeedCommand: check + "deployer-vm-smoke", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return DeployerVMSmoke(ctx, cfg, DeployerSmokeOptions{})
			}},
		{Name: "canonical-profile-eval-guards", Summary: "evaluate every canonical profile output, fail-first ($" + EnvFlake + ", default .)",
			SeedCommand: check + "canonical-profile-eval-guards", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return CanonicalProfileEvalGuards(ctx, cfg, flake())
			}},
		{Name: "canonical-profile-build-guards", Summary: "build every canonical derivation output, fail-first ($" + EnvFlake + ", default .)",
			SeedCommand: check + "canonical-profile-build-guards", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return CanonicalProfileBuildGuards(ctx, cfg, flake())
			}},
		{Name: "portable-control-plane-regressions", Summary: "eval guard + deployer-vm-smoke (+ members not yet implemented, skipped)",
			SeedCommand: check + "portable-control-plane-regressions", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return PortableControlPlaneRegressions(ctx, cfg, PortableOptions{Guards: flake()})
			}},
		{Name: "baremetal-iso", Summary: "UEFI install from ISO: phone-home, bundle, Disko, reboot, first boot, desired system active (2 nodes)",
			SeedCommand: cluster + "baremetal-iso", Topology: ultracloud.TopologyBaremetalISO, Requires: ultracloud.TCGOK, Run: baremetal},
		{Name: "baremetal-iso-e2e", Summary: "baremetal-iso as a flake check: non-interactive, JUnit to $out",
			SeedCommand: check + "baremetal-iso-e2e", Topology: ultracloud.TopologyBaremetalISO, Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				cfg.Progress = nil
				return baremetal(ctx, cfg)
			}},
	}
}
