package lanes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
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

// DeployerVMSmoke proves a node can receive a prebuilt target closure from
// the deployer (the phone-home server) and activate it without building:
// the agent unpacks and switches, reports active with the new system id,
// and records that nothing was built; the guest has no build tools at all.
func DeployerVMSmoke(ctx context.Context, cfg ultracloud.RunConfig, o DeployerSmokeOptions) (*ultracloud.Report, error) {
	r := ultracloud.NewReport("deployer-vm-smoke", cfg.Host)
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "deployer-smoke-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	const node, mac = "deployer-smoke", "52:54:00:d0:00:01"
	sysDir, sysID := o.SystemDir, o.SystemID
	if sysDir == "" {
		sysDir = filepath.Join(work, "system")
		sysID = "deployer-smoke-system-" + time.Now().UTC().Format("20060102T150405")
		files := map[string]string{
			"root/etc/ultracloud/system-id":  sysID + "\n",
			"root/bin/ultracloud-hello":      "#!/bin/sh\necho hello from " + sysID + "\n",
			"root/etc/ultracloud/components": "chainfire flaredb iam\n",
		}
		for name, data := range files {
			p := filepath.Join(sysDir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
				return nil, err
			}
		}
	}
	t0 := time.Now()
	b, err := bootstrap.PackBundle(ctx, sysDir, sysID, filepath.Join(work, "bundles"))
	r.AddStep(stepOf("host-build-closure", "", t0, err))
	if err != nil {
		r.Finish(err)
		return r, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	stateDir := filepath.Join(work, "phone-home")
	if err := os.RemoveAll(stateDir); err != nil { // every run owns its state
		ln.Close()
		return nil, err
	}
	srv, err := bootstrap.NewPhoneHomeServer(bootstrap.ServerConfig{StateDir: stateDir, RunID: r.RunID,
		Nodes:     []bootstrap.NodeSpec{{Name: node, Role: "worker", MACs: []string{mac}, Bundle: b.Path, SystemID: sysID}},
		PublicURL: "http://" + GuestServerAddr, Logger: cfg.Log()})
	if err != nil {
		ln.Close()
		return nil, err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(served) }()
	defer func() { stop(); <-served; srv.Close() }()

	t1 := time.Now()
	m, err := bootFixture(ctx, o.Fixture, cfg, vm.Config{Name: node, Dir: filepath.Join(work, "nodes", node), MemoryMiB: 512,
		Cmdline: "ultracloud.role=shell ultracloud.if=" + mac + "=10.0.2.15/24@10.0.2.2",
		NICs: []vm.NICConfig{{ID: "uplink", MAC: mac, User: true,
			GuestFwd: []vm.GuestFwd{{GuestAddr: GuestServerAddr, HostAddr: ln.Addr().String()}}}}})
	if err != nil {
		r.AddStep(stepOf("boot", node, t1, err))
		r.Finish(err)
		return r, nil
	}
	defer m.Close()
	r.AddArtifact("console", m.Console().LogPath())
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	err = m.Shell().Connected(bctx)
	r.AddStep(stepOf("boot", node, t1, err))
	if err != nil {
		r.Finish(err)
		return r, nil
	}
	sh := m.Shell()
	t2 := time.Now()
	out, err := sh.Succeed(bctx, "/init activate --server http://"+strings.TrimSuffix(GuestServerAddr, ":80")+" 2>&1")
	if err == nil {
		_, err = srv.WaitPhase(bctx, node, bootstrap.PhaseActive)
	}
	r.AddStep(stepOf("activate", node, t2, wrapOut(err, out)))
	if err != nil {
		r.Finish(err)
		return r, nil
	}
	t3 := time.Now()
	got, err := sh.Succeed(bctx, "cat /run/current-system/etc/ultracloud/system-id && /bin/sh /run/current-system/bin/ultracloud-hello")
	if err == nil && !strings.Contains(got, sysID+"\nhello from "+sysID) {
		err = fmt.Errorf("the current system is not %s: %q", sysID, got)
	}
	r.AddStep(stepOf("switched", node, t3, err))
	// The activated system is the host's, byte for byte: every file of the
	// host-built tree is in the current system with the same sha256.
	t4 := time.Now()
	want, err := treeSHA256(filepath.Join(sysDir, "root"))
	var got2 string
	if err == nil {
		got2, err = sh.Succeed(bctx, "cd /run/current-system/ && find . -type f -exec sha256sum {} +")
	}
	if err == nil {
		err = sameTree(want, got2)
	}
	r.AddStep(stepOf("host-built-closure-activated", node, t4, err))
	t5 := time.Now()
	rec, err := sh.Succeed(bctx, "cat /var/lib/ultracloud/activation.json")
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
	if err == nil {
		// A guard on the guest, not a proof: no build tool exists there, so
		// the activation cannot have built anything.
		if tools, _ := sh.Succeed(bctx, "for t in nix nix-build nix-store gcc cc go make; do command -v $t || true; done"); strings.TrimSpace(tools) != "" {
			err = fmt.Errorf("build tools present in the guest: %s", tools)
		}
	}
	r.AddStep(stepOf("no-build", node, t5, err))
	r.Finish(nil)
	return r, nil
}

func wrapOut(err error, out string) error {
	if err == nil || strings.TrimSpace(out) == "" {
		return err
	}
	return fmt.Errorf("%w\n%s", err, strings.TrimSpace(out))
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
