// Package vm runs QEMU machines for the testkit: host preflight (which
// accelerator works here), machine launch with QMP and consoles, the
// NixOS-compatible guest shell, an in-process L2 switch and fault injection.
//
// Every machine started here dies with the process that started it
// (Pdeathsig) and with the context or test that owns it.
package vm
