// Package lanes holds the run scaffold, the one lane driver, and every
// documented validation lane of UltraCloud composed from the testkit's
// primitives.
//
// A lane is a LaneFunc run by Execute: it receives a *Run that owns the work
// dir (a rerun redoes the work), the run id, the logger and progress view,
// and the report. Through the Run a lane boots its topology's nodes (Boot:
// the topology decides vCPUs, memory, disks and NICs; VLANs become
// switches), starts the phone-home server of the run (PhoneHome), waits on
// checks (Wait: checks.Eventually, failing at once on a dead machine), and
// records steps (Step, Record, Skip), events (Event: faults, detections)
// and artifacts. Execute writes report.json, junit.xml and timeline.svg
// once, at the end.
//
// Main is the driver behind every examples/<lane>, every `ultracloud
// cluster <lane>` and every flake check: the same flags (DriverOptions),
// the same summary, the same exit codes (ExitPass, ExitFail,
// ExitCouldNotRun, ExitIncomplete). Registry lists the lanes that run; Seed
// the ones the testing document names.
//
// docs/adding-a-lane.md walks through writing a lane.
package lanes
