package lanes

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Exit codes of every lane driver (examples/<lane>, `ultracloud cluster
// <lane>`, the flake checks).
const (
	ExitPass = 0
	// ExitFail: the lane ran and failed.
	ExitFail = 1
	// ExitCouldNotRun: bad flags, preflight refused, the lane could not run.
	ExitCouldNotRun = 2
	// ExitIncomplete: nothing failed but steps or members were skipped;
	// skipped is not passed.
	ExitIncomplete = 3
)

// ExitCode maps a finished report to the driver's exit code.
func ExitCode(r *ultracloud.Report) int {
	switch r.Status {
	case ultracloud.StatusPass:
		return ExitPass
	case ultracloud.StatusIncomplete, ultracloud.StatusSkip:
		return ExitIncomplete
	default:
		return ExitFail
	}
}

// DriverOptions are the values of the flags every driver takes; each lane
// uses those that apply to it.
type DriverOptions struct {
	// WorkDir of the run (default ./ultracloud-work/<lane>).
	WorkDir string
	// E2E is flake-check mode: no live view, info logs, JUnit also to
	// JUnitDir ($out by default).
	E2E      bool
	JUnitDir string
	// Verbose logs every step; JSON prints the report as JSON on stdout
	// instead of the summary.
	Verbose, JSON bool
	// KeepVMs leaves machines running after the lane.
	KeepVMs bool
	// Accel forces an accelerator (kvm, tcg, auto; default $ULTRACLOUD_ACCEL).
	Accel string
	// Flake for the guard lanes (default $ULTRACLOUD_FLAKE, else ".").
	Flake string
	// ISO, Bundle, SystemID and Plans (node → disko JSON file) run
	// baremetal-iso on real NixOS outputs (see docs/baremetal-iso.md).
	ISO, Bundle, SystemID string
	Plans                 map[string]string
	// System is deployer-vm-smoke's target: a store path built on this
	// host (default: a small system it builds with nix).
	System string
	// Baseline and MaxRegression are fresh-bench-storage's comparison
	// with an earlier bench.json ("20%" by default).
	Baseline, MaxRegression string
	// AllowTCG lets the publishable KVM suite run without usable KVM.
	AllowTCG bool
	// Cell runs one fresh-matrix cell.
	Cell string
}

// EnvFlake is the flake the guard lanes evaluate (default ".").
const EnvFlake = "ULTRACLOUD_FLAKE"

// flags binds the common flags to o on fs.
func (o *DriverOptions) flags(fs *flag.FlagSet, lane string) {
	fs.StringVar(&o.WorkDir, "work-dir", "", "run directory (default ./ultracloud-work/"+lane+")")
	fs.BoolVar(&o.E2E, "e2e", false, "flake-check mode: no live view, JUnit also to $out (or -junit-dir)")
	fs.StringVar(&o.JUnitDir, "junit-dir", "", "also write junit.xml here (default $out with -e2e)")
	fs.BoolVar(&o.Verbose, "v", false, "log every step")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON on stdout instead of the summary")
	fs.BoolVar(&o.KeepVMs, "keep-vms", false, "leave machines running after the lane ("+EnvKeepQuickstartVM+"=1 for the quickstart)")
	fs.StringVar(&o.Accel, "accel", "", "force the accelerator: kvm, tcg or auto (default $"+vm.EnvAccel+")")
	fs.StringVar(&o.Flake, "flake", "", "flake for the guard lanes (default $"+EnvFlake+", else .)")
	fs.StringVar(&o.ISO, "iso", "", "baremetal-iso: installer ISO (default: the fixture's)")
	fs.StringVar(&o.Bundle, "bundle", "", "baremetal-iso: target system tree with esp/ and root/ (default: the fixture's)")
	fs.StringVar(&o.SystemID, "system-id", "", "baremetal-iso: desired system id of -bundle")
	fs.StringVar(&o.Cell, "cell", "", "fresh-matrix: run this cell only")
	fs.BoolVar(&o.AllowTCG, "allow-tcg", false, "publishable-kvm-suite: run without usable KVM (fixture guest only; recorded)")
	fs.StringVar(&o.Baseline, "baseline", "", "fresh-bench-storage: an earlier run's bench.json; a metric worse by more than -max-regression fails")
	fs.StringVar(&o.MaxRegression, "max-regression", "20%", "fresh-bench-storage: allowed worsening against -baseline")
	fs.StringVar(&o.System, "system", "", "deployer-vm-smoke: a store path built here whose closure the node activates (default: a small system built with nix)")
	fs.Func("plan", "baremetal-iso: NODE=disko.json (repeatable; default: the topology's plans)", func(v string) error {
		node, file, ok := strings.Cut(v, "=")
		if !ok || node == "" || file == "" {
			return fmt.Errorf("want NODE=PLAN.json, got %q", v)
		}
		if o.Plans == nil {
			o.Plans = map[string]string{}
		}
		o.Plans[node] = file
		return nil
	})
}

// flake is the guard lanes' flake.
func (o DriverOptions) flake() string {
	if o.Flake != "" {
		return o.Flake
	}
	return os.Getenv(EnvFlake)
}

// keptMachines collects machines a lane hands over to its driver.
type keptMachines struct {
	mu sync.Mutex
	ms []*vm.Machine
}

func (k *keptMachines) add(m *vm.Machine) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ms = append(k.ms, m)
}

// Main is the body of every lane driver: examples/<lane>, `ultracloud
// cluster <lane>` and the flake checks. It parses the common flags from
// args (see DriverOptions), runs preflight and the lane, prints a summary
// (or the report as JSON), and returns the exit code: ExitPass, ExitFail,
// ExitCouldNotRun or ExitIncomplete. It never exits the process. A VM the
// lane keeps (the quickstart with ULTRACLOUD_QUICKSTART_KEEP_VM=1) gets a
// shell on stdin until it ends.
func Main(ctx context.Context, lane string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o DriverOptions
	fs := flag.NewFlagSet(lane, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.flags(fs, lane)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [flags]\n\nRuns the %s lane; exit 0 passed, 1 failed, 2 could not run, 3 incomplete.\n\n", lane, lane)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitPass
		}
		return ExitCouldNotRun
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q (every option is a flag; see -h)\n", lane, fs.Args())
		return ExitCouldNotRun
	}
	r, kept, err := drive(ctx, lane, o, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, lane+":", err)
		return ExitCouldNotRun
	}
	for _, m := range kept {
		interactKept(ctx, m, r.Host, stdin, stdout)
	}
	return ExitCode(r)
}

// drive runs lane with o and reports where its results are.
func drive(ctx context.Context, lane string, o DriverOptions, stdout, stderr io.Writer) (*ultracloud.Report, []*vm.Machine, error) {
	kept := &keptMachines{}
	reg, err := registryWith(o, kept)
	if err != nil {
		return nil, nil, err
	}
	l, err := reg.Lookup(lane)
	if err != nil {
		return nil, nil, err
	}
	var popts []vm.PreflightOption
	if o.Accel != "" {
		popts = append(popts, vm.WithAccel(ultracloud.Accel(strings.ToLower(o.Accel))))
	}
	host, err := vm.Preflight(ctx, popts...)
	if err != nil {
		return nil, nil, err
	}
	var topo ultracloud.Topology
	if l.Topology != "" {
		topo, _ = ultracloud.LookupTopology(l.Topology)
	}
	forced := o.Accel != "" || os.Getenv(vm.EnvAccel) != ""
	if host, err = Admit(l, host, RealImages(topo, o), forced); err != nil {
		return nil, nil, err
	}
	level := slog.LevelWarn
	if o.Verbose || o.E2E {
		level = slog.LevelInfo
	}
	cfg := ultracloud.RunConfig{Host: host, KeepVMs: o.KeepVMs, WorkDir: o.WorkDir,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join("ultracloud-work", lane)
	}
	if !o.E2E {
		cfg.Progress = stderr
	}
	if o.JUnitDir == "" && o.E2E {
		o.JUnitDir = os.Getenv("out")
	}
	r, err := l.Run(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("lane %s: %w", lane, err)
	}
	if o.JSON {
		if err := r.WriteJSON(stdout); err != nil {
			return r, kept.ms, err
		}
	} else {
		printSummary(stdout, lane, cfg.WorkDir, r)
	}
	if o.JUnitDir != "" {
		if err := writeJUnit(r, o.JUnitDir); err != nil {
			return r, kept.ms, err
		}
		if !o.JSON {
			fmt.Fprintf(stdout, "junit also written to %s\n", filepath.Join(o.JUnitDir, "junit.xml"))
		}
	}
	return r, kept.ms, nil
}

func printSummary(w io.Writer, lane, workDir string, r *ultracloud.Report) {
	abs, _ := filepath.Abs(workDir)
	report := filepath.Join(abs, "report")
	fmt.Fprintf(w, "\nlane %s: %s in %s; steps: %s (accelerator %s: %s)\n", lane, r.Status,
		r.Finished.Sub(r.Started).Round(1e9), r.Counts(), r.Host.Accelerator, r.Host.AccelReason)
	if r.Status != ultracloud.StatusPass {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
	}
	names := map[string]string{}
	for _, a := range r.Artifacts {
		names[a.Name] = a.Path
	}
	fmt.Fprintf(w, "report:   %s\njunit:    %s\n", filepath.Join(report, "report.json"), filepath.Join(report, "junit.xml"))
	if p, ok := names["timeline"]; ok {
		fmt.Fprintf(w, "timeline: %s\n", p)
	}
}

func writeJUnit(r *ultracloud.Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "junit.xml"))
	if err != nil {
		return err
	}
	werr := r.WriteJUnit(f)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// EnvKeepQuickstartVM keeps the quickstart VM alive after a pass, as the
// seed's ULTRACLOUD_QUICKSTART_KEEP_VM=1 does.
const EnvKeepQuickstartVM = "ULTRACLOUD_QUICKSTART_KEEP_VM"

// interactKept says how to reach a kept machine and runs the commands read
// from in inside it until in ends; then it stops the machine.
func interactKept(ctx context.Context, m *vm.Machine, host ultracloud.HostEnv, in io.Reader, out io.Writer) {
	defer m.Close()
	fmt.Fprintf(out, "\nVM %s kept alive (%s=1 or -keep-vms; accelerator %s).\n"+
		"  console log:       %s\n  QEMU command line: %s\n  machine dir:       %s\n"+
		"Type commands to run them in the guest (e.g. systemctl status chainfire); end input (Ctrl-D) to stop the VM.\n",
		m.Name(), EnvKeepQuickstartVM, host.Accelerator, m.Console().LogPath(), filepath.Join(m.Dir(), "qemu-cmdline"), m.Dir())
	if err := Interact(ctx, m, in, out); err != nil {
		fmt.Fprintln(out, "shell:", err)
	}
}

// Interact runs commands typed on in inside m through its backdoor shell
// until in ends; it is how a kept VM is reached.
func Interact(ctx context.Context, m *vm.Machine, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	fmt.Fprintf(out, "%s> ", m.Name())
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			res, err := m.Shell().Execute(ctx, line+" 2>&1")
			if err != nil {
				return err
			}
			out.Write(res.Stdout)
			if res.ExitCode != 0 {
				fmt.Fprintf(out, "(exit %d)\n", res.ExitCode)
			}
		}
		fmt.Fprintf(out, "%s> ", m.Name())
	}
	fmt.Fprintln(out)
	return sc.Err()
}

// Lanes names the lanes a driver can run, sorted.
func Lanes() []string {
	reg, _ := Registry()
	names := reg.Names()
	sort.Strings(names)
	return names
}
