# A self-contained stand-in for UltraCloud's flake: the canonical output
# names of the testing document, each a trivial derivation. It evaluates and
# builds offline (no nixpkgs), so the guards run against real Nix here.
{
  description = "testkit guard fixture";
  outputs = { self }:
    let
      mk = name: derivation {
        inherit name;
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" "echo ${name} > $out" ];
      };
      # What nixpkgs defines per kind of configuration: every system has a
      # toplevel and a VM runner; the ISO has isoImage; netboot images have
      # the netboot kernel and initrd.
      extra = name:
        if name == "ultracloud-iso" then { isoImage = mk "${name}-iso"; }
        else if builtins.substring 0 8 name == "netboot-" then { kernel = mk "${name}-kernel"; netbootRamdisk = mk "${name}-initrd"; }
        else { };
      build = name: { toplevel = mk name; vm = mk "run-${name}-vm"; } // extra name;
      nixos = name: { config.system.build = build name; };
      names = [
        "single-node-quickstart" "netboot-all-in-one" "node01" "node02" "node03"
        "netboot-control-plane" "ultracloud-iso" "baremetal-qemu-control-plane"
        "baremetal-qemu-worker" "netboot-worker"
      ];
    in {
      nixosConfigurations = builtins.listToAttrs (map (n: { name = n; value = nixos n; }) names);
      apps.x86_64-linux.single-node-quickstart = { type = "app"; program = "${mk "quickstart"}"; };
      checks.x86_64-linux.baremetal-iso-e2e = mk "baremetal-iso-e2e";
    };
}
