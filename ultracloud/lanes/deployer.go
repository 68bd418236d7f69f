package lanes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/deployer"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// DeployerSmokeOptions configure the deployer-vm-smoke lane.
type DeployerSmokeOptions struct {
	Fixture *fixture.Builder
	// SystemDir is the prebuilt target (root/ and optionally esp/); default
	// a small fixture system. SystemID names it.
	SystemDir, SystemID string
}

// DeployerSmokeTopology is deployer-vm-smoke's machine: one small worker
// whose only network is the uplink to the deployer.
func DeployerSmokeTopology() ultracloud.Topology {
	return ultracloud.Topology{Name: "deployer-vm-smoke", Profile: ultracloud.HAControlPlane,
		Networks: []ultracloud.Network{{Name: ultracloud.NetUplink, Kind: ultracloud.NetworkUser, CIDR: "10.0.2.0/24"}},
		Nodes: []ultracloud.Node{{Name: "deployer-smoke", Role: ultracloud.RoleWorker, VCPUs: 1, MemoryMiB: 512,
			NICs: []ultracloud.NIC{{Network: ultracloud.NetUplink, MAC: "52:54:00:d0:00:01"}}, Firmware: ultracloud.FirmwareDirect}},
	}
}

// DeployerVMSmoke proves a node can receive a prebuilt target closure from
// the deployer (the phone-home server) and activate it without building:
// the agent unpacks and switches, reports active with the new system id,
// the activated tree is the host-built one byte for byte, and the guest has
// no build tools at all.
func DeployerVMSmoke(ctx context.Context, cfg ultracloud.RunConfig, o DeployerSmokeOptions) (*ultracloud.Report, error) {
	topo := DeployerSmokeTopology()
	return Execute(ctx, cfg, Spec{Name: "deployer-vm-smoke", Topo: &topo, Fixture: o.Fixture}, func(ctx context.Context, r *Run) error {
		node := topo.Nodes[0]
		sysDir, sysID := o.SystemDir, o.SystemID
		var b *bootstrap.Bundle
		err := r.Step(ctx, "", "host-build-closure", func(ctx context.Context) (err error) {
			if sysDir == "" {
				if sysDir, err = r.Dir("state", "system"); err != nil {
					return err
				}
				sysID = "deployer-smoke-system-" + r.ID()
				if err := writeSmokeSystem(sysDir, sysID); err != nil {
					return err
				}
			}
			bundles, err := r.Dir("state", "bundles")
			if err == nil {
				b, err = bootstrap.PackBundle(ctx, sysDir, sysID, bundles)
			}
			return err
		})
		if err != nil {
			return err
		}
		srv, addr, err := r.PhoneHome(ctx, []deployer.NodeSpec{{Name: node.Name, Role: "worker", MACs: []string{node.NICs[0].MAC}, Bundle: b.Path, SystemID: sysID}})
		if err != nil {
			return err
		}
		var m *vm.Machine
		timeout := r.Scaled(time.Minute)
		err = r.Step(ctx, node.Name, "boot", func(ctx context.Context) (err error) {
			m, err = r.Boot(ctx, node.Name, WithCmdline("ultracloud.role=shell"),
				WithGuestFwd(vm.GuestFwd{GuestAddr: GuestServerAddr, HostAddr: addr}))
			if err != nil {
				return err
			}
			bctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return m.Shell().Connected(bctx)
		})
		if err != nil {
			return err
		}
		sh := m.Shell()
		err = r.Step(ctx, node.Name, "activate", func(ctx context.Context) error {
			out, err := sh.Succeed(ctx, "/init activate --server http://"+strings.TrimSuffix(GuestServerAddr, ":80")+" 2>&1")
			if err != nil {
				return fmt.Errorf("%w\n%s", err, strings.TrimSpace(out))
			}
			return checks.Eventually(checks.Phase{Server: srv, Node: node.Name, Phase: bootstrap.PhaseActive}, time.Second, timeout).Run(ctx)
		})
		if err != nil {
			return err
		}
		r.Step(ctx, node.Name, "switched", func(ctx context.Context) error {
			got, err := sh.Succeed(ctx, "cat /run/current-system/etc/ultracloud/system-id")
			if err == nil && strings.TrimSpace(got) != sysID {
				err = fmt.Errorf("the current system is %q, not %s", strings.TrimSpace(got), sysID)
			}
			return err
		})
		// The activated system is the host's, byte for byte.
		var want map[string]string
		r.Step(ctx, node.Name, "host-built-closure-activated", func(ctx context.Context) (err error) {
			if want, err = treeSHA256(filepath.Join(sysDir, "root")); err != nil {
				return err
			}
			got, err := sh.Succeed(ctx, "cd /run/current-system/ && find . -type f -exec sha256sum {} +")
			if err != nil {
				return err
			}
			return sameTree(want, got)
		})
		r.Step(ctx, node.Name, "no-build", func(ctx context.Context) error {
			rec, err := sh.Succeed(ctx, "cat /var/lib/ultracloud/activation.json")
			var act struct {
				SystemID string `json:"systemID"`
				Unpacked int    `json:"unpacked"`
				Switched bool   `json:"switched"`
			}
			if err == nil {
				err = json.Unmarshal([]byte(rec), &act)
			}
			if err == nil && (!act.Switched || act.Unpacked != len(want) || act.SystemID != sysID) {
				err = fmt.Errorf("activation record says %+v; want %s switched with %d files unpacked", act, sysID, len(want))
			}
			if err != nil {
				return err
			}
			// A guard on the guest, not a proof: no build tool exists there.
			if tools, _ := sh.Succeed(ctx, "for t in nix nix-build nix-store gcc cc go make; do command -v $t || true; done"); strings.TrimSpace(tools) != "" {
				return fmt.Errorf("build tools present in the guest: %s", tools)
			}
			return nil
		})
		return nil
	})
}

// writeSmokeSystem lays out the small default target system.
func writeSmokeSystem(dir, sysID string) error {
	files := map[string]string{
		"root/etc/ultracloud/system-id":  sysID + "\n",
		"root/bin/ultracloud-hello":      "#!/bin/sh\necho hello from " + sysID + "\n",
		"root/etc/ultracloud/components": "chainfire flaredb iam\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// treeSHA256 hashes every regular file below dir, by "./"-relative path.
func treeSHA256(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(data)
		out["./"+rel] = hex.EncodeToString(sum[:])
		return nil
	})
	return out, err
}

// sameTree compares want with sha256sum output, naming every difference.
func sameTree(want map[string]string, sha256sum string) error {
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(sha256sum), "\n") {
		if sum, name, ok := strings.Cut(line, "  "); ok {
			got[name] = sum
		}
	}
	var diffs []string
	for name, sum := range want {
		switch g, ok := got[name]; {
		case !ok:
			diffs = append(diffs, "missing "+name)
		case g != sum:
			diffs = append(diffs, fmt.Sprintf("%s: sha256 %s, host built %s", name, g, sum))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, "not host-built: "+name)
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return fmt.Errorf("the current system is not the host-built closure:\n  %s", strings.Join(diffs, "\n  "))
	}
	return nil
}
