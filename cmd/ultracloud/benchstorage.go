package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// benchFlags are the flags of `cluster bench-storage` and its fresh-
// variant.
type benchFlags struct {
	clusterLaneFlags
	baseline, maxRegression string
	sizeMiB, ops, rounds    int
	objects, objectSize     int
	nodes                   []string
}

func (f *benchFlags) add(cmd *cobra.Command, fresh bool) {
	f.clusterLaneFlags.add(cmd, "fresh-bench-storage", fresh)
	cmd.Flags().StringVar(&f.baseline, "baseline", "", "an earlier run's bench.json; a metric worse by more than --max-regression fails (exit 1, naming it)")
	cmd.Flags().StringVar(&f.maxRegression, "max-regression", "20%", "allowed worsening against --baseline")
	cmd.Flags().IntVar(&f.sizeMiB, "size", 32, "disk region measured per node, MiB")
	cmd.Flags().IntVar(&f.ops, "ops", 1000, "operations of each random pattern")
	cmd.Flags().IntVar(&f.rounds, "rounds", 3, "rounds of every measurement, interleaved; each figure is the median")
	cmd.Flags().IntVar(&f.objects, "objects", 16, "objects put and read back through lightningstor")
	cmd.Flags().IntVar(&f.objectSize, "object-size", 256<<10, "bytes per object (at most 1 MiB)")
	cmd.Flags().StringSliceVar(&f.nodes, "nodes", nil, "measure the disks of these nodes only (default: every node)")
}

func (f *benchFlags) bench(cmd *cobra.Command) error {
	worse, err := lanes.ParseRegression(f.maxRegression)
	if err != nil {
		return &exitError{code: lanes.ExitCouldNotRun, err: err}
	}
	return f.run(cmd, "fresh-bench-storage", func(ctx context.Context, cfg ultracloud.RunConfig, cl *cluster.Client) (*ultracloud.Report, error) {
		return lanes.FreshBenchStorage(ctx, cfg, lanes.BenchStorageOptions{Cluster: cl, Baseline: f.baseline, MaxRegression: worse, SizeMiB: f.sizeMiB, Ops: f.ops, Rounds: f.rounds, Nodes: f.nodes, Objects: f.objects, ObjectSize: f.objectSize})
	})
}

func newBenchStorage() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench-storage",
		Short: "Measure the disks inside every node and lightningstor on the running cluster; JSON + SVG; --baseline compares",
		Example: `  ultracloud cluster bench-storage
  ultracloud cluster bench-storage --baseline ultracloud-work/fresh-bench-storage/report/bench.json --max-regression 20%`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.bench(cmd) },
	}
	f.add(cmd, false)
	return cmd
}

func newFreshBenchStorage() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "fresh-bench-storage",
		Short: "clean + start fresh-cluster + bench-storage: storage regression tracking; the cluster keeps running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.fresh(cmd, func() error { return f.bench(cmd) })
		},
	}
	f.add(cmd, true)
	return cmd
}
