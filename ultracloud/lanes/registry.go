package lanes

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"github.com/photoncloud/testkit/ultracloud"
)

// Documented is a lane the platform's testing document names, with the
// command it gives for it and the registered lane that runs it.
type Documented struct {
	Name        string
	SeedCommand string
	// Lane is the registered lane that implements it ("" while it is not
	// runnable), and Args the driver flags it needs (e.g. -e2e).
	Lane string
	Args []string
}

// Seed lists every lane the testing document names, in its order.
func Seed() []Documented {
	const cluster = "nix run ./nix/test-cluster#cluster -- "
	const check = "nix build .#checks.x86_64-linux."
	return []Documented{
		{"single-node-quickstart", "nix run .#single-node-quickstart", "single-node-quickstart", nil},
		{"baremetal-iso", cluster + "baremetal-iso", "baremetal-iso", nil},
		{"baremetal-iso-e2e", check + "baremetal-iso-e2e", "baremetal-iso", []string{"-e2e"}},
		{"canonical-profile-eval-guards", check + "canonical-profile-eval-guards", "canonical-profile-eval-guards", nil},
		{"canonical-profile-build-guards", check + "canonical-profile-build-guards", "canonical-profile-build-guards", nil},
		{"portable-control-plane-regressions", check + "portable-control-plane-regressions", "portable-control-plane-regressions", nil},
		{"deployer-vm-smoke", check + "deployer-vm-smoke", "deployer-vm-smoke", nil},
		{"fresh-smoke", cluster + "fresh-smoke", "fresh-smoke", nil},
		{"fresh-demo-vm-webapp", cluster + "fresh-demo-vm-webapp", "fresh-demo-vm-webapp", nil},
		{"fresh-matrix", cluster + "fresh-matrix", "fresh-matrix", nil},
		{"fresh-bench-storage", cluster + "fresh-bench-storage", "fresh-bench-storage", nil},
		{"publishable-kvm-suite", "./nix/test-cluster/run-publishable-kvm-suite.sh ./work/publishable-kvm-suite", "publishable-kvm-suite", nil},
	}
}

// Registry returns a new registry holding every lane that runs today, with
// default options. Lanes the testing document names but this release
// cannot run are absent: see Seed for the full list.
func Registry() (*ultracloud.Registry, error) {
	return registryWith(DriverOptions{}, nil)
}

// registryWith builds the lanes with a driver's option values; kept, when
// set, receives machines a lane hands over (the quickstart's kept VM).
func registryWith(o DriverOptions, kept *keptMachines) (*ultracloud.Registry, error) {
	const cluster = "nix run ./nix/test-cluster#cluster -- "
	const check = "nix build .#checks.x86_64-linux."
	guards := func() GuardOptions { return GuardOptions{Flake: o.flake()} }
	return ultracloud.NewRegistry(
		ultracloud.Lane{Name: "single-node-quickstart", Summary: "one-box quickstart: chainfire, flaredb, iam, plasmavmc, prismnet ready from inside the guest",
			SeedCommand: "nix run .#single-node-quickstart", Topology: ultracloud.TopologySingleNodeQuickstart, Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				qo := QuickstartOptions{}
				if kept != nil {
					qo.Kept = kept.add
				}
				return SingleNodeQuickstart(ctx, cfg, qo)
			}},
		ultracloud.Lane{Name: "deployer-vm-smoke", Summary: "a node's nix-agent installs and activates a closure built here by nix (NarHash-checked, complete) without building",
			SeedCommand: check + "deployer-vm-smoke", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return DeployerVMSmoke(ctx, cfg, DeployerSmokeOptions{System: o.System})
			}},
		ultracloud.Lane{Name: "canonical-profile-eval-guards", Summary: "evaluate every canonical profile output, fail-first (-flake, $" + EnvFlake + ", default .)",
			SeedCommand: check + "canonical-profile-eval-guards", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return CanonicalProfileEvalGuards(ctx, cfg, guards())
			}},
		ultracloud.Lane{Name: "canonical-profile-build-guards", Summary: "build every canonical derivation output, fail-first (-flake, $" + EnvFlake + ", default .)",
			SeedCommand: check + "canonical-profile-build-guards", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return CanonicalProfileBuildGuards(ctx, cfg, guards())
			}},
		ultracloud.Lane{Name: "portable-control-plane-regressions", Summary: "eval guard + deployer-bootstrap-e2e + host-lifecycle-e2e + deployer-vm-smoke + fleet-scheduler-e2e; passes only if all 5 pass",
			SeedCommand: check + "portable-control-plane-regressions", Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return PortableControlPlaneRegressions(ctx, cfg, PortableOptions{Guards: guards()})
			}},
		ultracloud.Lane{Name: "fresh-smoke", Summary: "6-node gate: readiness, chainfire (etcd) consensus, flaredb/iam state, placement, faults with invariants, history check",
			SeedCommand: cluster + "fresh-smoke", Topology: ultracloud.TopologyFreshCluster, Requires: ultracloud.KVMRequired,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return FreshSmoke(ctx, cfg, FreshSmokeOptions{})
			}},
		ultracloud.Lane{Name: "fresh-demo-vm-webapp", Summary: "a webapp VM (plasmavmc) on prismnet keeps its entries in lightningstor through its worker's death; recreated elsewhere, the worker rejoins",
			SeedCommand: cluster + "fresh-demo-vm-webapp", Topology: ultracloud.TopologyFreshCluster, Requires: ultracloud.KVMRequired,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return FreshDemoVMWebapp(ctx, cfg, DemoVMWebappOptions{})
			}},
		ultracloud.Lane{Name: "fresh-bench-storage", Summary: "disk MB/s, 4 KiB IOPS, fsync p50/p99 inside every node (O_DIRECT) and lightningstor put/get; JSON + SVG; -baseline fails on a regression",
			SeedCommand: cluster + "fresh-bench-storage", Topology: ultracloud.TopologyFreshCluster, Requires: ultracloud.KVMRequired,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				worse, err := ParseRegression(cmp.Or(o.MaxRegression, "20%"))
				if err != nil {
					return nil, err
				}
				return FreshBenchStorage(ctx, cfg, BenchStorageOptions{Baseline: o.Baseline, MaxRegression: worse})
			}},
		ultracloud.Lane{Name: "fresh-matrix", Summary: "provider bundles composed: flashdns name → fiberlb VIP on prismnet → VM backends on two workers, one cut off and back; coronafs volume moved between VMs on two workers over NBD, lightningstor object shared by two VMs",
			SeedCommand: cluster + "fresh-matrix", Topology: ultracloud.TopologyFreshCluster, Requires: ultracloud.KVMRequired,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return FreshMatrix(ctx, cfg, MatrixOptions{Cell: o.Cell})
			}},
		ultracloud.Lane{Name: "publishable-kvm-suite", Summary: "environment.json, then fresh-smoke, fresh-demo-vm-webapp, fresh-matrix in one report; exit 2 at preflight without KVM unless -allow-tcg",
			SeedCommand: "./nix/test-cluster/run-publishable-kvm-suite.sh ./work/publishable-kvm-suite", Topology: ultracloud.TopologyFreshCluster, Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				return PublishableKVMSuite(ctx, cfg, PublishableOptions{AllowTCG: o.AllowTCG})
			}},
		ultracloud.Lane{Name: "baremetal-iso", Summary: "UEFI install from ISO: phone-home, bundle, Disko, reboot, first boot, desired system active (2 nodes)",
			SeedCommand: cluster + "baremetal-iso", Topology: ultracloud.TopologyBaremetalISO, Requires: ultracloud.TCGOK,
			Run: func(ctx context.Context, cfg ultracloud.RunConfig) (*ultracloud.Report, error) {
				bo, err := o.baremetal()
				if err != nil {
					return nil, err
				}
				return BaremetalISO(ctx, cfg, bo)
			}},
	)
}

// baremetal turns the driver's flags into BaremetalOptions.
func (o DriverOptions) baremetal() (BaremetalOptions, error) {
	bo := BaremetalOptions{ISO: o.ISO, BundleDir: o.Bundle, SystemID: o.SystemID}
	for node, file := range o.Plans {
		data, err := os.ReadFile(file)
		if err != nil {
			return bo, fmt.Errorf("-plan %s=%s: %w", node, file, err)
		}
		if bo.Plans == nil {
			bo.Plans = map[string][]byte{}
		}
		bo.Plans[node] = data
	}
	return bo, nil
}
