# deployer-vm-smoke's default target system: three store paths built offline with
# real Nix and no nixpkgs (builder /bin/sh of the host, sandbox off): a
# dependency file, a library referencing it (a symlink and text), and the
# system (an activation script, a symlink to the library). stamp (the run
# id) makes every run build a new system path.
# tools is where mkdir, cat, ln and chmod are (a flake check passes
# coreutils: its sandbox has no /bin/mkdir).
{ stamp ? "none", tools ? "/bin" }:
let
  system = "x86_64-linux";
  builder = "/bin/sh";
  dep = derivation {
    name = "ultracloud-smoke-dep"; inherit system builder;
    args = [ "-c" "echo 'hello from a host-built closure' > $out" ];
  };
  lib = derivation {
    name = "ultracloud-smoke-lib"; inherit system builder dep;
    args = [ "-c" ''
      ${tools}/mkdir -p $out/share
      ${tools}/cat $dep > $out/share/greeting
      ${tools}/ln -s $dep $out/share/dep
    '' ];
  };
in derivation {
  name = "ultracloud-smoke-system"; inherit system builder lib stamp;
  args = [ "-c" ''
    ${tools}/mkdir -p $out/etc
    echo "$stamp" > $out/etc/system-stamp
    ${tools}/ln -s $lib $out/sw
    printf '#!/bin/sh\nset -e\nmkdir -p /run/ultracloud\ncat %s/share/greeting > /run/ultracloud/activated\necho %s >> /run/ultracloud/activated\n' "$lib" "$out" > $out/activate
    ${tools}/chmod 555 $out/activate
  '' ];
}
