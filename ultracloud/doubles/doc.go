// Package doubles holds the fixture's test doubles of the UltraCloud
// control plane, with real distributed behaviour: they run inside fixture
// guests (cmd/ultracloud-doubles) where real UltraCloud images would run
// the real services, and on the host in this package's tests.
//
//   - chainfire: a real etcd member (go.etcd.io/etcd/server/v3, embedded),
//     three of them forming the cluster's consensus store;
//   - flaredb: a key/value HTTP API whose state lives in chainfire;
//   - iam: issues bearer tokens on one node that validate on any other
//     (the tokens live in chainfire);
//   - lightningstor: an S3 object store (gofakes3, a maintained S3 server
//     library) whose buckets and objects live in chainfire, so they are
//     durable on the control-plane nodes' disks and readable through any
//     instance (objects up to 1 MiB, one chainfire value);
//   - prismnet: a tenant network (10.200.0.0/24) spanning the nodes, a
//     real kernel VXLAN overlay on a bridge per node, peers and address
//     allocations in chainfire; ports are network namespaces with an
//     address on it (what a VM's NIC is on real prismnet);
//   - plasmavmc: creates, lists and deletes VMs on the workers through an
//     HTTP API, specs and placement in chainfire. A fixture VM is a
//     sandbox, not a nested QEMU (far too slow under TCG): its own mount,
//     PID, UTS and IPC namespaces, its prismnet port's network namespace,
//     a cgroup memory limit, and a root filesystem unpacked from the VM
//     image file on the node's disk into a RAM disk, as a VM boots from an
//     initrd (see VMInit). VMs reach lightningstor at ServicesIP and
//     mount coronafs volumes. Real images run real VMs behind the same
//     API; lanes do not change;
//   - coronafs: network block volumes on the control-plane nodes' disks
//     (a FAT32-formatted file each), exported over NBD (NBDServer); a
//     worker attaches one to a VM through its kernel's NBD client
//     (AttachNBD, over netlink, as nbd-client does), and the attachment,
//     under the worker's lease in chainfire, keeps one VM at a time on a
//     volume;
//   - flashdns: authoritative DNS for ultracloud.internal (miekg/dns),
//     records in chainfire;
//   - fiberlb: TCP load balancers on prismnet VIPs with health checks,
//     specs in chainfire;
//   - node-agent: on every worker, heartbeats through a chainfire lease,
//     probes its disk and reports the node degraded when writes fail, and
//     runs the service instances assigned to its node;
//   - fleet-scheduler: leader-elected through chainfire, places the
//     replicas of each service on live workers, re-places them when a
//     heartbeat lease expires or a node is degraded, and keeps the count
//     (no duplicates).
//
// Nothing here is a canned answer: a lane that checks the doubles checks
// etcd's consensus, leases and watches. The key layout in chainfire is
// this package's contract with lanes (Key*, Prefix*).
package doubles
