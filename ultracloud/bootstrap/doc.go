// Package bootstrap is the guest side of UltraCloud's bare-metal bootstrap,
// and what both sides share: the DiskoPlan a machine is partitioned by, the
// Bundle it installs, the phone-home protocol types, and the Client,
// Installer and Agent a machine runs. PID 1 of the fixture guest imports
// it, so it holds no server, no state database and no ISO code
// (`go list -deps ./cmd/ultracloud-guest` is checked for them); the host
// side, the PhoneHomeServer, is package deployer.
package bootstrap
