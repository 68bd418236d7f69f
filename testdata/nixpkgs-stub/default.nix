# A stand-in for nixpkgs with just what flake.nix uses, each a trivial
# derivation, so the flake's checks and apps evaluate and instantiate
# offline with real nix (TestFlakeChecksEvaluate). runCommand keeps the
# script and environment it is given, so the test reads the exact command
# line each check runs.
let
  system = "x86_64-linux";
  mk = name: derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" "mkdir -p $out" ]; };
  pkgs = {
    buildGoModule = a: mk a.pname;
    runCommand = name: env: script: derivation (env // { inherit name system; builder = "/bin/sh"; args = [ "-c" script ]; });
    qemu = mk "qemu";
    socat = mk "socat";
    nix = mk "nix";
    coreutils = mk "coreutils";
    go = mk "go";
    OVMF = { fd = mk "OVMF-fd"; };
    linuxPackages = { kernel = mk "linux" // { modDirVersion = "6.1.0-stub"; modules = mk "linux-modules"; }; };
    pkgsStatic = { bash = mk "bash-static"; busybox = mk "busybox-static"; };
    systemd = mk "systemd";
  };
in
{ legacyPackages.${system} = pkgs; }
