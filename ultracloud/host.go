package ultracloud

// Accel is a QEMU accelerator choice.
type Accel string

// Accelerators.
const (
	// AccelAuto picks kvm when it is usable, else tcg.
	AccelAuto Accel = "auto"
	// AccelKVM uses the kernel's KVM.
	AccelKVM Accel = "kvm"
	// AccelTCG uses QEMU's software emulation.
	AccelTCG Accel = "tcg"
)

// HostEnv is the host preflight verdict that goes into every report.
type HostEnv struct {
	// Hostname and Kernel (uname -r) of the host.
	Hostname string `json:"hostname,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	// CPUs online and total memory.
	CPUs      int `json:"cpus"`
	MemoryMiB int `json:"memoryMiB"`
	// QEMU is the qemu-system-x86_64 path, empty when missing.
	QEMU        string `json:"qemu,omitempty"`
	QEMUVersion string `json:"qemuVersion,omitempty"`
	// OVMFCode and OVMFVars are the UEFI firmware files, empty when missing.
	OVMFCode string `json:"ovmfCode,omitempty"`
	OVMFVars string `json:"ovmfVars,omitempty"`
	// KVMPresent: /dev/kvm exists. KVMUsable: Linux guests run under it.
	KVMPresent bool `json:"kvmPresent"`
	KVMUsable  bool `json:"kvmUsable"`
	// KVMReason explains the KVMUsable verdict.
	KVMReason string `json:"kvmReason"`
	// Nested is the kvm_intel/kvm_amd nested parameter ("Y", "1", "N", "").
	Nested string `json:"nested,omitempty"`
	// Accelerator is the one lanes use; AccelReason says why.
	Accelerator Accel  `json:"accelerator"`
	AccelReason string `json:"accelReason"`
	// Problems lists what is missing for VM lanes (no QEMU, no OVMF, …).
	Problems []string `json:"problems,omitempty"`
}
