package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// smokeFlags are the flags of `cluster smoke` and `cluster fresh-smoke`.
type smokeFlags struct {
	clusterLaneFlags
	faults   string
	replicas int
}

func (f *smokeFlags) add(cmd *cobra.Command, fresh bool) {
	f.clusterLaneFlags.add(cmd, "fresh-smoke", fresh)
	cmd.Flags().StringVar(&f.faults, "faults", strings.Join(lanes.SmokeFaults(), ","), "the fault checks to run, in order (none: \"\")")
	cmd.Flags().IntVar(&f.replicas, "replicas", 3, "instances of the smoke service the fleet-scheduler places")
}

// smoke runs the fresh-smoke lane on the running cluster of f.dir.
func (f *smokeFlags) smoke(cmd *cobra.Command) error {
	faults := []string{}
	for _, x := range strings.Split(f.faults, ",") {
		if x = strings.TrimSpace(x); x != "" {
			faults = append(faults, x)
		}
	}
	return f.run(cmd, "fresh-smoke", func(ctx context.Context, cfg ultracloud.RunConfig, cl *cluster.Client) (*ultracloud.Report, error) {
		return lanes.FreshSmoke(ctx, cfg, lanes.FreshSmokeOptions{Cluster: cl, Faults: faults, Replicas: f.replicas})
	})
}

func newSmoke() *cobra.Command {
	var f smokeFlags
	cmd := &cobra.Command{
		Use:   "smoke",
		Short: "Run fresh-smoke's checks and faults on the running cluster (it keeps running)",
		Long: `smoke runs the fresh-smoke lane on the cluster of --state: readiness,
core behaviour (chainfire linearizability, flaredb and iam state across
nodes, placement), then the fault checks (--faults) with their invariants,
and the history check. Faults are injected through the cluster's
supervisor; the cluster keeps running afterwards.`,
		Example: `  ultracloud cluster smoke
  ultracloud cluster smoke --faults pause-worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.smoke(cmd) },
	}
	f.add(cmd, false)
	return cmd
}

func newFreshSmoke() *cobra.Command {
	var f smokeFlags
	cmd := &cobra.Command{
		Use:   "fresh-smoke",
		Short: "clean + start fresh-cluster + smoke: the base VM-cluster gate; the cluster keeps running for status, logs, ssh",
		Example: `  ultracloud cluster fresh-smoke
  ultracloud cluster status; ultracloud cluster clean`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.fresh(cmd, func() error { return f.smoke(cmd) })
		},
	}
	f.add(cmd, true)
	return cmd
}
