// Package deployer is the host side of the bare-metal bootstrap: the
// PhoneHomeServer machines enrol with (matching them to topology nodes,
// one-time enrolment secrets, per-node tokens, plans, bundles with Range
// and ETag, ordered phase reports persisted in bbolt, run ids), what the
// UltraCloud deployer service does for real images. The protocol is
// documented in docs/phone-home.openapi.yaml; the guest side is package
// bootstrap.
package deployer
