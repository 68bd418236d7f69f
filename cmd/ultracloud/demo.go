package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// demoFlags are the flags of `cluster demo-vm-webapp` and its fresh-
// variant.
type demoFlags struct {
	clusterLaneFlags
	entries  int
	inMemory bool
}

func (f *demoFlags) add(cmd *cobra.Command, fresh bool) {
	f.clusterLaneFlags.add(cmd, "fresh-demo-vm-webapp", fresh)
	cmd.Flags().IntVar(&f.entries, "entries", 3, "guestbook entries to write")
	cmd.Flags().BoolVar(&f.inMemory, "in-memory", false, "run the webapp with its entries in memory only (the persistence check must fail)")
}

func (f *demoFlags) demo(cmd *cobra.Command) error {
	err := f.run(cmd, "fresh-demo-vm-webapp", func(ctx context.Context, cfg ultracloud.RunConfig, cl *cluster.Client) (*ultracloud.Report, error) {
		// The VM stays for serve-vm-webapp.
		return lanes.FreshDemoVMWebapp(ctx, cfg, lanes.DemoVMWebappOptions{Cluster: cl, Entries: f.entries, InMemory: f.inMemory, Keep: true})
	})
	if err == nil && !f.json {
		fmt.Fprintf(cmd.OutOrStdout(), "the webapp VM keeps running: `ultracloud cluster serve-vm-webapp --state %s` opens it on this host\n", f.dir)
	}
	return err
}

func newDemoVMWebapp() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo-vm-webapp",
		Short: "Run fresh-demo-vm-webapp on the running cluster: a webapp VM whose entries survive its worker (the VM keeps running)",
		Long: `demo-vm-webapp runs the fresh-demo-vm-webapp lane on the cluster of
--state: the webapp's image on every worker, a VM created through
plasmavmc with a prismnet address, the webapp answering from every other
node, entries written, the VM deleted and its worker killed, the VM
created again on another worker with every entry still there (kept in
lightningstor), the killed worker restarted and rejoining. The VM keeps
running afterwards for serve-vm-webapp.`,
		Example: `  ultracloud cluster demo-vm-webapp
  ultracloud cluster serve-vm-webapp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.demo(cmd) },
	}
	f.add(cmd, false)
	return cmd
}

func newFreshDemoVMWebapp() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "fresh-demo-vm-webapp",
		Short: "clean + start fresh-cluster + demo-vm-webapp: the VM-hosting bundle proof; the cluster keeps running",
		Example: `  ultracloud cluster fresh-demo-vm-webapp
  ultracloud cluster serve-vm-webapp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.fresh(cmd, func() error { return f.demo(cmd) })
		},
	}
	f.add(cmd, true)
	return cmd
}

func newServeVMWebapp() *cobra.Command {
	var dir, listen string
	cmd := &cobra.Command{
		Use:   "serve-vm-webapp",
		Short: "Forward the demo webapp VM to this host and serve it until Ctrl-C (the cluster keeps running)",
		Example: `  ultracloud cluster serve-vm-webapp
  ultracloud cluster serve-vm-webapp --listen 127.0.0.1:9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := openCluster(dir)
			if err != nil {
				return err
			}
			if !cl.Alive() {
				return &exitError{code: lanes.ExitCouldNotRun, err: fmt.Errorf("the cluster in %s is not running; run `ultracloud cluster start --state %s`", dir, dir)}
			}
			out := cmd.OutOrStdout()
			err = lanes.ServeVMWebapp(cmd.Context(), cl, listen, func(s lanes.ServedWebapp) {
				fmt.Fprintf(out, "serving the webapp VM (on %s at %s) at %s\npress Ctrl-C to stop\n", s.Node, s.IP, s.URL)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "stopped; the forward is gone, the cluster and the VM keep running")
			return nil
		},
	}
	stateFlag(cmd, &dir)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "host address to serve on")
	return cmd
}
