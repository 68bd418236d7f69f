package ultracloud

import (
	"fmt"
	"slices"
)

// ComponentKind says what a component is: a service that runs on a node, or
// an image that is built and booted.
type ComponentKind string

// Component kinds.
const (
	// KindService is a long-running service with a systemd unit.
	KindService ComponentKind = "service"
	// KindImage is a bootable image (netboot helpers, installer ISOs).
	KindImage ComponentKind = "image"
)

// Placement says which nodes of a profile run a component.
type Placement string

// Placements used by the canonical profiles.
const (
	// OnEveryNode: the component runs on every node of the profile (default).
	OnEveryNode Placement = ""
	// OnControlPlane: the component runs on every control-plane node.
	OnControlPlane Placement = "control-plane"
	// OnBootstrapNode: the component runs on the bootstrap node only.
	OnBootstrapNode Placement = "bootstrap-node"
	// AfterBootstrap: the component comes up only after bare-metal bootstrap.
	AfterBootstrap Placement = "after-bootstrap"
)

// Probe tells how to decide that a component is ready beyond its systemd unit
// being active. The testkit never invents ports for UltraCloud services: a
// probe is supplied by the user (or by a fixture that knows its own ports).
// At most one of HTTP and Command is set.
type Probe struct {
	// HTTP is a URL fetched from inside the guest; 2xx means ready.
	HTTP string `json:"http,omitempty"`
	// Command is a shell command run in the guest; exit 0 means ready.
	Command string `json:"command,omitempty"`
}

// IsZero reports whether p configures nothing.
func (p Probe) IsZero() bool { return p.HTTP == "" && p.Command == "" }

// Component is one UltraCloud building block named in a profile.
type Component struct {
	// Name is the component's name as UltraCloud spells it, e.g. "chainfire".
	Name string `json:"name"`
	// Kind is service (default) or image.
	Kind ComponentKind `json:"kind,omitempty"`
	// Placement narrows which nodes run it; empty means every node.
	Placement Placement `json:"placement,omitempty"`
	// Probe is an optional readiness probe beyond the unit being active.
	Probe *Probe `json:"probe,omitempty"`
}

// Unit is the component's systemd unit name, "<name>.service".
func (c Component) Unit() string { return c.Name + ".service" }

// WithProbe returns a copy of c that uses p as its readiness probe.
func (c Component) WithProbe(p Probe) Component {
	c.Probe = &p
	return c
}

// ProfileName names one of the canonical profiles.
type ProfileName string

// The three canonical profiles of the platform's testing document.
const (
	SingleNodeDev      ProfileName = "single-node dev"
	HAControlPlane     ProfileName = "3-node HA control plane"
	BareMetalBootstrap ProfileName = "bare-metal bootstrap"
)

// Profile is a supported deployment shape: the Nix outputs that build it and
// the components it must (and may) run.
type Profile struct {
	// Name is the profile's name as the testing document spells it.
	Name ProfileName `json:"name"`
	// Outputs are the flake outputs and commands that produce the profile,
	// as written in the testing document (e.g. "nixosConfigurations.node01").
	Outputs []string `json:"outputs"`
	// Required components must be healthy for the profile to pass.
	Required []Component `json:"required"`
	// Optional components may be enabled on top.
	Optional []Component `json:"optional"`
}

// Component returns the required or optional component called name.
func (p Profile) Component(name string) (Component, bool) {
	for _, c := range slices.Concat(p.Required, p.Optional) {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// RequiredServices returns the required components of kind service.
func (p Profile) RequiredServices() []Component {
	var out []Component
	for _, c := range p.Required {
		if c.Kind == "" || c.Kind == KindService {
			out = append(out, c)
		}
	}
	return out
}

func svc(names ...string) []Component {
	out := make([]Component, len(names))
	for i, n := range names {
		out[i] = Component{Name: n, Kind: KindService}
	}
	return out
}

// Profiles returns the three canonical profiles, freshly allocated, in the
// order of the testing document.
func Profiles() []Profile {
	return []Profile{
		{
			Name: SingleNodeDev,
			Outputs: []string{
				"nix run .#single-node-quickstart",
				"nixosConfigurations.single-node-quickstart",
				"nixosConfigurations.netboot-all-in-one",
			},
			Required: svc("chainfire", "flaredb", "iam", "plasmavmc", "prismnet"),
			Optional: svc("lightningstor", "coronafs", "flashdns", "fiberlb", "apigateway",
				"nightlight", "creditservice", "k8shost", "deployer"),
		},
		{
			Name: HAControlPlane,
			Outputs: []string{
				"nixosConfigurations.node01",
				"nixosConfigurations.node02",
				"nixosConfigurations.node03",
				"nixosConfigurations.netboot-control-plane",
			},
			Required: []Component{
				{Name: "chainfire", Kind: KindService},
				{Name: "flaredb", Kind: KindService},
				{Name: "iam", Kind: KindService},
				{Name: "nix-agent", Kind: KindService, Placement: OnControlPlane},
				{Name: "deployer", Kind: KindService, Placement: OnBootstrapNode},
			},
			Optional: svc("fleet-scheduler", "node-agent", "prismnet", "flashdns", "fiberlb",
				"plasmavmc", "lightningstor", "coronafs", "k8shost", "apigateway",
				"nightlight", "creditservice"),
		},
		{
			Name: BareMetalBootstrap,
			Outputs: []string{
				"nixosConfigurations.ultracloud-iso",
				"nixosConfigurations.baremetal-qemu-control-plane",
				"nixosConfigurations.baremetal-qemu-worker",
				"checks.x86_64-linux.baremetal-iso-e2e",
			},
			Required: svc("deployer", "first-boot-automation", "install-target", "nix-agent"),
			Optional: []Component{
				{Name: "netboot-control-plane", Kind: KindImage},
				{Name: "netboot-worker", Kind: KindImage},
				{Name: "netboot-all-in-one", Kind: KindImage},
				{Name: "node-agent", Kind: KindService, Placement: AfterBootstrap},
				{Name: "fleet-scheduler", Kind: KindService, Placement: AfterBootstrap},
			},
		},
	}
}

// LookupProfile returns the canonical profile called name.
func LookupProfile(name ProfileName) (Profile, error) {
	for _, p := range Profiles() {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("%w: %q (known: %q, %q, %q)", ErrUnknownProfile, name,
		SingleNodeDev, HAControlPlane, BareMetalBootstrap)
}
