# UltraCloud testkit as a flake: the CLI and one driver per lane as packages
# and apps, and the lanes as flake checks (what `nix build .#checks…` runs).
#
# The checks boot VMs: they need QEMU and OVMF in the build environment and,
# for the fixture guest, a kernel, static bash and busybox, and systemd-boot
# from nixpkgs (ULTRACLOUD_KERNEL, ULTRACLOUD_MODULES, ULTRACLOUD_BASH_STATIC,
# ULTRACLOUD_BUSYBOX_STATIC, ULTRACLOUD_SYSTEMD_BOOT), since a Nix sandbox
# has no apt, and the guest's PID 1 from this flake's own package
# (ULTRACLOUD_GUEST_BINARY), since it has no Go module to build from. The
# guard checks get nix. KVM is used when /dev/kvm works; otherwise TCG.
#
# `make test` checks this file's syntax (nix-instantiate --parse), that
# vendorHash matches go.mod (TestFlakeVendorHash), and evaluates it offline
# with real nix against testdata/nixpkgs-stub (TestFlakeChecksEvaluate):
# every check instantiates, runs its lane's driver with flags the driver
# accepts, and the checks and apps are the registry's lanes.
{
  description = "UltraCloud testkit: validation lanes in Go on real QEMU";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      lanes = [
        "baremetal-iso"
        "single-node-quickstart"
        "deployer-vm-smoke"
        "canonical-profile-eval-guards"
        "canonical-profile-build-guards"
        "portable-control-plane-regressions"
        "fresh-smoke"
        "fresh-demo-vm-webapp"
        "fresh-bench-storage"
        "fresh-matrix"
        "publishable-kvm-suite"
      ];
      testkit = pkgs.buildGoModule {
        pname = "ultracloud-testkit";
        version = "0.1.0";
        src = ./.;
        vendorHash = "sha256-P/App3pHegcXcltwVq1d7ZC2OUaeqlcf4UII7on9IPY=";
        subPackages = [ "cmd/ultracloud" "cmd/ultracloud-guest" "cmd/ultracloud-doubles" "cmd/ultracloud-webapp" ] ++ map (l: "examples/${l}") lanes;
        env.CGO_ENABLED = "0";
        doCheck = false; # the tests boot VMs; the checks below run the lanes
      };
      kernel = pkgs.linuxPackages.kernel;
      fixtureEnv = {
        ULTRACLOUD_KERNEL = "${kernel}/bzImage";
        ULTRACLOUD_MODULES = "${kernel.modules or kernel}/lib/modules/${kernel.modDirVersion}";
        ULTRACLOUD_BASH_STATIC = "${pkgs.pkgsStatic.bash}/bin/bash";
        ULTRACLOUD_BUSYBOX_STATIC = "${pkgs.pkgsStatic.busybox}/bin/busybox";
        ULTRACLOUD_SYSTEMD_BOOT = "${pkgs.systemd}/lib/systemd/boot/efi/systemd-bootx64.efi";
      };
      # Every lane is a check; baremetal-iso's is named as the seed names it.
      checkName = l: if l == "baremetal-iso" then "baremetal-iso-e2e" else l;
      # A lane as a flake check: run its driver in -e2e mode; JUnit to $out.
      laneCheck = lane: pkgs.runCommand lane ({
        nativeBuildInputs = [ testkit pkgs.qemu pkgs.socat pkgs.nix pkgs.coreutils ];
        requiredSystemFeatures = [ "nixos-test" ];
        ULTRACLOUD_CACHE = "/build/ultracloud-cache";
        # The fixture's PID 1 from this flake's own package: no go build in
        # the sandbox.
        ULTRACLOUD_GUEST_BINARY = "${testkit}/bin/ultracloud-guest";
        ULTRACLOUD_DOUBLES_BINARY = "${testkit}/bin/ultracloud-doubles";
        ULTRACLOUD_WEBAPP_BINARY = "${testkit}/bin/ultracloud-webapp";
        # Lanes that build with nix (deployer-vm-smoke's closure) use a
        # store of their own inside the build sandbox.
        NIX_REMOTE = "local?root=/build/nix-root";
        ULTRACLOUD_NIX_TOOLS = "${pkgs.coreutils}/bin";
        ULTRACLOUD_OVMF_CODE = "${pkgs.OVMF.fd}/FV/OVMF_CODE.fd";
        ULTRACLOUD_OVMF_VARS = "${pkgs.OVMF.fd}/FV/OVMF_VARS.fd";
      } // fixtureEnv) ''
        mkdir -p $out
        export HOME=$TMPDIR
        ${lane} -e2e -work-dir $TMPDIR/work
      '';
    in {
      packages.${system} = {
        default = testkit;
        ultracloud = testkit;
      };
      apps.${system} = {
        cluster = { type = "app"; program = "${testkit}/bin/ultracloud"; };
        single-node-quickstart = { type = "app"; program = "${testkit}/bin/single-node-quickstart"; };
      } // builtins.listToAttrs (map (l: { name = l; value = { type = "app"; program = "${testkit}/bin/${l}"; }; }) lanes);
      checks.${system} = builtins.listToAttrs (map (l: { name = checkName l; value = laneCheck l; }) lanes);
    };
}
