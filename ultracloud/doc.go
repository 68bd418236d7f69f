// Package ultracloud is the vocabulary of the testkit: the canonical
// profiles and components of UltraCloud, the topologies lanes boot, the
// lanes themselves and the reports they write.
//
// It does no I/O beyond encoding: every type here can be built in a test,
// emitted by Nix with `nix eval --json`, and read back with encoding/json.
// Packages that touch the host (vm, image, bootstrap, …) import this one,
// never the other way round.
package ultracloud
