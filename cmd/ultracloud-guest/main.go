// Command ultracloud-guest is PID 1 of the testkit's fixture guests.
//
// As init it mounts the API filesystems, loads the kernel modules listed in
// /etc/ultracloud/modules.order, configures networking from the kernel
// command line, supervises fixture components, serves the NixOS test
// driver's backdoor shell on /dev/hvc0, serves SSH on port 22 when handed
// keys, and runs its role. It prints one
// console marker per phase (see ultracloud.Marker) and powers the machine
// off on a fatal error instead of leaving a dead PID 1 spinning.
//
// The same binary is multi-call: invoked as `systemctl` it is the client of
// the component supervisor; as `journalctl` it reads the units' logs; as
// `poweroff`, `reboot` or `halt` it asks PID 1 to stop the units and power
// off, reboot or halt; as `nc` and `timeout` it answers like NixOS's
// netcat (-z) and coreutils timeout (exit 124); as `ultracloud-guest component NAME` it is a
// fixture component (an honest test double that serves /health).
//
// Kernel command line:
//
//	ultracloud.role=shell|installer|node|nix-agent
//	                                       what the guest does (default shell);
//	                                       nix-agent: the nix-agent double,
//	                                       which installs and activates the
//	                                       desired closure by itself
//	ultracloud.if=IFACE=CIDR[@GATEWAY]     static address; IFACE is a name
//	                                       (eth0), a MAC or "auto"; repeatable
//	ultracloud.phone-home=URL              installer, nix-agent: the deployer
//	ultracloud.root=PARTLABEL=NAME         node: the installed root partition
//	ultracloud.node=NAME                   node: its name
//	ultracloud.components=a,b,c            fixture components to run
//	ultracloud.fail=a,b                    components whose double fails
//	ultracloud.users=alice,bob             extra login users (uid 1000…)
//	ultracloud.persist=SERIAL              mount the disk with this serial on
//	                                       /var/lib (ext2 made when blank)
//	ultracloud.hostname=NAME               the hostname
//
// Credentials (SMBIOS OEM strings, else the command line):
//
//	ultracloud.enrol-secret=S              installer: the enrolment secret
//	ultracloud.ssh.host-key=B64            sshd: the host key's ed25519 seed
//	ultracloud.ssh.authorized-key=B64      sshd: the key root logs in with
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "systemctl":
		os.Exit(systemctlMain(os.Args[1:], os.Stdout, os.Stderr))
	case "journalctl":
		os.Exit(journalctlMain(os.Args[1:], os.Stdout, os.Stderr))
	case verbPoweroff, verbReboot, verbHalt:
		os.Exit(powerMain(filepath.Base(os.Args[0]), os.Stderr))
	case "nc":
		os.Exit(ncMain(os.Args[1:], os.Stderr))
	case "timeout":
		os.Exit(timeoutMain(os.Args[1:], os.Stderr))
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "component":
			os.Exit(componentMain(os.Args[2:]))
		case "storage-bench":
			os.Exit(storageBenchMain(os.Args[2:], os.Stdout, os.Stderr))
		case "object-bench":
			os.Exit(objectBenchMain(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "ultracloud-guest: this is the init of a fixture guest and must run as PID 1;")
		fmt.Fprintln(os.Stderr, "  invoked as `systemctl` it talks to the supervisor, and `ultracloud-guest component NAME` runs a component")
		os.Exit(2)
	}
	runInit()
}
