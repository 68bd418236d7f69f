package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
	"github.com/photoncloud/testkit/ultracloud/vm"
)

// opsVerbs are the seed's operational verbs on a cluster that outlives one
// command: start, status, logs, ssh, stop, clean (and the hidden
// supervise that start runs detached).
func opsVerbs() []*cobra.Command {
	return []*cobra.Command{newStart(), newStatus(), newLogs(), newSSH(), newStop(), newClean(), newSmoke(), newFreshSmoke(), newDemoVMWebapp(), newFreshDemoVMWebapp(), newServeVMWebapp(), newBenchStorage(), newFreshBenchStorage(), newMatrix(), newFreshMatrix(), newPublishable(), newSupervise()}
}

func stateFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "state", cluster.DefaultStateDir, "the cluster's state directory")
}

// openCluster opens the cluster of dir with the CLI's wording.
func openCluster(dir string) (*cluster.Client, error) {
	cl, err := cluster.Open(dir)
	if errors.Is(err, cluster.ErrNoCluster) {
		flag := ""
		if dir != cluster.DefaultStateDir {
			flag = " --state " + dir
		}
		return nil, &exitError{code: 1, err: fmt.Errorf("no cluster in %s; run `ultracloud cluster start%s`", dir, flag)}
	}
	return cl, err
}

// resolveTopology is a canonical topology by name, else a topology file.
func resolveTopology(arg string) (ultracloud.Topology, error) {
	topo, err := ultracloud.LookupTopology(arg)
	if err == nil {
		return topo, nil
	}
	raw, ferr := os.ReadFile(arg)
	if ferr != nil {
		return ultracloud.Topology{}, fmt.Errorf("--topology %q is neither a canonical topology (%v) nor a readable file (%v)", arg, err, ferr)
	}
	return ultracloud.ParseTopology(raw)
}

func newStart() *cobra.Command {
	var dir, topoArg, accel string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Boot a cluster that outlives this command (default fresh-cluster, 6 nodes), owned by a detached supervisor",
		Long: `start boots every node of the topology under a supervisor process that
keeps running after this command returns; it waits until every node
answers SSH. A stopped cluster in the same --state boots its same disks
again. status, logs, ssh, stop and clean work on it.`,
		Example: `  ultracloud cluster start
  ultracloud cluster start --topology ha-control-plane --state /tmp/ha`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			topo, err := resolveTopology(topoArg)
			if err != nil {
				return err
			}
			host, err := preflight(ctx, accel)
			if err != nil {
				return err
			}
			host, err = lanes.AdmitKVMRequired("cluster "+topo.Name, host, lanes.RealImages(topo, lanes.DriverOptions{}), accel != "" || os.Getenv(vm.EnvAccel) != "")
			if err != nil {
				return &exitError{code: lanes.ExitCouldNotRun, err: err}
			}
			if err := cluster.Prepare(dir, topo); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			argv := []string{exe, "cluster", "supervise", "--state", dir, "--accel", string(host.Accelerator)}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "starting %s (%d nodes) in %s; accelerator %s: %s\n", topo.Name, len(topo.Nodes), dir, host.Accelerator, host.AccelReason)
			begin := time.Now()
			sctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			cl, err := cluster.Spawn(sctx, dir, argv)
			if err != nil {
				return err
			}
			if err := waitSSH(sctx, cl, topo); err != nil {
				return fmt.Errorf("%w; the cluster keeps running: `ultracloud cluster status`, `logs NODE`, `stop`", err)
			}
			fmt.Fprintf(out, "all %d nodes answer SSH after %v\n", len(topo.Nodes), time.Since(begin).Round(100*time.Millisecond))
			st, err := cl.Status(ctx)
			if err != nil {
				return err
			}
			return printStatus(out, st)
		},
	}
	stateFlag(cmd, &dir)
	cmd.Flags().StringVar(&topoArg, "topology", ultracloud.TopologyFreshCluster, "a canonical topology (`ultracloud topology`) or a topology JSON file")
	cmd.Flags().StringVar(&accel, "accel", "", "force an accelerator: kvm, tcg or auto")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for every node")
	return cmd
}

func preflight(ctx context.Context, accel string) (ultracloud.HostEnv, error) {
	var opts []vm.PreflightOption
	if accel != "" {
		opts = append(opts, vm.WithAccel(ultracloud.Accel(strings.ToLower(accel))))
	}
	host, err := vm.Preflight(ctx, opts...)
	if err != nil {
		return host, &exitError{code: lanes.ExitCouldNotRun, err: err}
	}
	return host, nil
}

// trueOverSSH logs in to node and runs `true`.
func trueOverSSH(ctx context.Context, cl *cluster.Client, node string) error {
	c, err := cl.SSH(ctx, node)
	if err != nil {
		return err
	}
	defer c.Close()
	code, err := cluster.RunSSH(ctx, c, "true", nil, io.Discard, io.Discard)
	if err == nil && code != 0 {
		err = fmt.Errorf("%s: `true` exited %d", node, code)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	return nil
}

// waitSSH waits until every node runs a command over SSH.
func waitSSH(ctx context.Context, cl *cluster.Client, topo ultracloud.Topology) error {
	errs := make(chan error, len(topo.Nodes))
	for _, n := range topo.Nodes {
		go func() {
			// A login that fails after its handshake (a connection dropped
			// by a guest still starting up) is tried again while ctx lasts;
			// SSH refuses at once what cannot change (host key, auth).
			var err error
			for {
				err = trueOverSSH(ctx, cl, n.Name)
				if err == nil || ctx.Err() != nil || errors.Is(err, cluster.ErrHostKey) || errors.Is(err, cluster.ErrLogin) {
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			errs <- err
		}()
	}
	var all []error
	for range topo.Nodes {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func newStatus() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Each node's state, pid, uptime, accelerator, addresses and units; the supervisor's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := openCluster(dir)
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), st)
			} else {
				err = printStatus(cmd.OutOrStdout(), st)
			}
			if err == nil && (st.Supervisor.State == cluster.SupervisorGone || st.Supervisor.State == cluster.SupervisorFailed) {
				return &exitError{code: 1, err: fmt.Errorf("the supervisor is %s", st.Supervisor.State), quiet: true}
			}
			return err
		},
	}
	stateFlag(cmd, &dir)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w io.Writer, st cluster.Status) error {
	sup := st.Supervisor
	fmt.Fprintf(w, "cluster %s in %s: supervisor %s", st.Topology, st.Dir, sup.State)
	if sup.PID > 0 && sup.State != cluster.SupervisorStopped {
		fmt.Fprintf(w, " (pid %d)", sup.PID)
	}
	fmt.Fprintln(w)
	if sup.Detail != "" {
		fmt.Fprintf(w, "  %s\n", sup.Detail)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tPID\tUPTIME\tACCEL\tADDRESSES\tSSH\tUNITS")
	for _, n := range st.Nodes {
		var addrs []string
		for nw, a := range n.Addresses {
			addrs = append(addrs, nw+"="+a)
		}
		sort.Strings(addrs)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.State, dash(n.PID), orDash(n.Uptime), orDash(string(n.Accelerator)),
			orDash(strings.Join(addrs, " ")), orDash(n.SSH), units(n.Units))
	}
	return tw.Flush()
}

func units(u map[string]string) string {
	if len(u) == 0 {
		return "-"
	}
	active := 0
	var bad []string
	for name, s := range u {
		if s == "active" {
			active++
		} else {
			bad = append(bad, name+"="+s)
		}
	}
	sort.Strings(bad)
	out := fmt.Sprintf("%d/%d active", active, len(u))
	if len(bad) > 0 {
		out += " (" + strings.Join(bad, " ") + ")"
	}
	return out
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newLogs() *cobra.Command {
	var dir string
	var follow, journal bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs NODE",
		Short: "A node's console log (kept after stop); --journal reads the guest's journal over SSH",
		Example: `  ultracloud cluster logs node01 --lines 50
  ultracloud cluster logs node01 -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := openCluster(dir)
			if err != nil {
				return err
			}
			node := args[0]
			if journal {
				return runRemote(cmd, cl, node, fmt.Sprintf("journalctl --no-pager -n %d", lines), nil)
			}
			path, err := cl.ConsoleLog(node)
			if err != nil {
				return err
			}
			return tailFile(cmd.Context(), cmd.OutOrStdout(), path, lines, follow)
		},
	}
	stateFlag(cmd, &dir)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the console writes (Ctrl-C ends)")
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "how many of the last lines to print (0: all)")
	cmd.Flags().BoolVar(&journal, "journal", false, "the guest's journal (journalctl over SSH) instead of the console")
	return cmd
}

// tailFile prints the last n lines of path, then, with follow, what is
// appended until ctx ends.
func tailFile(ctx context.Context, w io.Writer, path string, n int, follow bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no console log at %s yet: the node never booted in this state dir", path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var last []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		last = append(last, sc.Text())
		if n > 0 && len(last) > n {
			last = last[1:]
		}
	}
	for _, l := range last {
		fmt.Fprintln(w, l)
	}
	if !follow {
		return nil
	}
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newSSH() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "ssh NODE [-- COMMAND...]",
		Short: "A root SSH session on a node (interactive with a PTY), or one command whose exit status is passed through",
		Example: `  ultracloud cluster ssh node04
  ultracloud cluster ssh node04 -- hostname`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := openCluster(dir)
			if err != nil {
				return err
			}
			return runRemote(cmd, cl, args[0], strings.Join(args[1:], " "), cmd.InOrStdin())
		},
	}
	stateFlag(cmd, &dir)
	return cmd
}

// runRemote runs command on node over SSH (an interactive shell when it is
// empty) and passes its exit status through.
func runRemote(cmd *cobra.Command, cl *cluster.Client, node, command string, stdin io.Reader) error {
	ctx := cmd.Context()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	client, err := cl.SSH(dctx, node)
	cancel()
	if err != nil {
		return err
	}
	defer client.Close()
	var code int
	if command == "" {
		code, err = interactive(ctx, client, stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
	} else {
		code, err = cluster.RunSSH(ctx, client, command, stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code, err: fmt.Errorf("exit status %d", code), quiet: true}
	}
	return nil
}

// interactive is a login shell; on a terminal with a PTY in raw mode and
// window-size changes passed on.
func interactive(ctx context.Context, client *ssh.Client, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	sess, err := client.NewSession()
	if err != nil {
		return -1, err
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		cols, rows, err := term.GetSize(fd)
		if err != nil {
			cols, rows = 80, 24
		}
		tname := os.Getenv("TERM")
		if tname == "" {
			tname = "xterm"
		}
		if err := sess.RequestPty(tname, rows, cols, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return -1, err
		}
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, err
		}
		defer term.Restore(fd, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if c, r, err := term.GetSize(fd); err == nil {
					sess.WindowChange(r, c)
				}
			}
		}()
	}
	if err := sess.Shell(); err != nil {
		return -1, err
	}
	return cluster.ExitStatus(ctx, sess.Wait())
}

func newStop() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Power every node down (then kill after a bound); disks are kept and `start` boots them again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := openCluster(dir)
			if err != nil {
				return err
			}
			if !cl.Alive() {
				st, _ := cl.Status(cmd.Context())
				fmt.Fprintf(cmd.OutOrStdout(), "nothing runs in %s (supervisor %s)\n", cl.Dir(), st.Supervisor.State)
				return nil
			}
			begin := time.Now()
			ctx, cancel := context.WithTimeout(cmd.Context(), cluster.ShutdownTimeout+30*time.Second)
			defer cancel()
			if err := cl.Stop(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stopped in %v; disks kept in %s; `ultracloud cluster start` boots them again\n",
				time.Since(begin).Round(100*time.Millisecond), cl.Dir())
			return nil
		},
	}
	stateFlag(cmd, &dir)
	return cmd
}

func newClean() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Stop the cluster (kill it if it does not stop) and remove its state: disks, keys, logs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cluster.Clean(cmd.Context(), dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", dir)
			return nil
		},
	}
	stateFlag(cmd, &dir)
	return cmd
}

func newSupervise() *cobra.Command {
	var dir, accel string
	cmd := &cobra.Command{
		Use:    "supervise",
		Short:  "Run the supervisor of a state dir in the foreground (what `start` runs detached)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, err := preflight(cmd.Context(), accel)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			return cluster.Supervise(cmd.Context(), dir, host, cluster.WithLogger(log))
		},
	}
	stateFlag(cmd, &dir)
	cmd.Flags().StringVar(&accel, "accel", "", "force an accelerator: kvm, tcg or auto")
	return cmd
}
