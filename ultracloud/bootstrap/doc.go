// Package bootstrap is UltraCloud's bare-metal bootstrap, runnable in
// tests: the DiskoPlan a machine is partitioned by, the PhoneHomeServer it
// enrols with, the Bundle it installs, and the guest-side Client, Installer
// and Agent.
package bootstrap
