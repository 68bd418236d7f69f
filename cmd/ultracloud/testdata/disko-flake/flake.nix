# A self-contained flake (no inputs) whose disko devices look like what
# disko's module evaluates to: function-valued internals (_meta, _pkgs,
# _create, …), a derivation, _index kept, defaults filled in.
{
  outputs = { self }:
    let
      drv = derivation { name = "disko-script"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };
      part = index: name: size: type: content: {
        _index = index;
        _create = dev: "sgdisk --new=${toString index} ${dev}";
        _mount = { };
        inherit name size type content;
        label = "disk-main-${name}";
        start = "0";
        end = if size == "100%" then "-0" else "+${size}";
        priority = if size == "100%" then 9001 else 1000;
        alignment = 0;
        attributes = [ ];
      };
    in {
      nixosConfigurations.node01.config.disko.devices = {
        _meta = x: x;
        _pkgs = p: [ ];
        _scripts = { destroy = drv; };
        disk.main = {
          type = "disk";
          device = "/dev/vdb";
          imageSize = "2G";
          _config = _: { };
          content = {
            type = "gpt";
            _create = d: "sgdisk --zap ${d}";
            script = drv;
            partitions = {
              ESP = part 1 "ESP" "512M" "EF00" { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; extraArgs = [ ]; _mount = m: m; };
              root = part 2 "root" "100%" "8300" { type = "filesystem"; format = "ext4"; mountpoint = "/"; extraArgs = [ "-L" "nixos" ]; };
            };
          };
        };
        mdadm = { };
        lvm_vg = { };
        zpool = { };
        nodev."/tmp" = { type = "nodev"; fsType = "tmpfs"; mountpoint = "/tmp"; mountOptions = [ "size=1G" ]; _mount = _: { }; };
      };
    };
}
