package lanes

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// Main is the body of a lane driver (examples/<lane>): it parses the common
// flags, runs the registered lane and exits 0 (passed), 1 (failed), 2
// (could not run) or 3 (incomplete: steps skipped, nothing failed).
//
//	-work-dir DIR   run directory (default ./ultracloud-work/<lane>)
//	-e2e            flake-check mode: no live view, JUnit to $out
//	-flake REF      flake for the guard lanes (sets ULTRACLOUD_FLAKE)
//	-keep-vms       leave machines running (where the lane supports it)
//	-v              log every step
func Main(laneName string) {
	os.Exit(main(laneName, os.Args[1:], os.Stdout, os.Stderr))
}

func main(laneName string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(laneName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	workDir := fs.String("work-dir", "", "run directory (default ./ultracloud-work/"+laneName+")")
	e2e := fs.Bool("e2e", false, "flake-check mode: no live view, JUnit to $out when set")
	flake := fs.String("flake", "", "flake reference for the guard lanes (default $"+EnvFlake+" or .)")
	keep := fs.Bool("keep-vms", false, "leave machines running after the lane")
	verbose := fs.Bool("v", false, "log every step")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *flake != "" {
		os.Setenv(EnvFlake, *flake)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg, err := Registry()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	lane, err := reg.Lookup(laneName)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	host, err := vm.Preflight(ctx)
	if err != nil {
		fmt.Fprintln(stderr, laneName+":", err)
		return 2
	}
	level := slog.LevelWarn
	if *verbose || *e2e {
		level = slog.LevelInfo
	}
	cfg := ultracloud.RunConfig{Host: host, KeepVMs: *keep,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	run := RunOptions{WorkDir: *workDir, Out: stdout}
	if *e2e {
		run.JUnitOut = os.Getenv("out")
	} else {
		cfg.Progress = os.Stderr
	}
	r, err := Run(ctx, lane, cfg, run)
	if err != nil {
		fmt.Fprintln(stderr, laneName+":", err)
		return 2
	}
	return ExitCode(r)
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
