// Command portable-control-plane-regressions runs the portable-control-plane-regressions lane of UltraCloud's testing document
// (see `ultracloud lanes` for its seed command). Flags: -work-dir, -e2e
// (flake-check mode, JUnit to $out), -flake, -v. Exit code: 0 passed,
// 1 failed, 2 could not run.
package main

import "github.com/photoncloud/testkit/ultracloud/lanes"

func main() { lanes.Main("portable-control-plane-regressions") }
