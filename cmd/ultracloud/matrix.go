package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// matrixFlags are the flags of `cluster matrix` and `cluster fresh-matrix`.
type matrixFlags struct {
	clusterLaneFlags
	cell string
}

func (f *matrixFlags) add(cmd *cobra.Command, fresh bool) {
	f.clusterLaneFlags.add(cmd, "fresh-matrix", fresh)
	cmd.Flags().StringVar(&f.cell, "cell", "", "run this cell only ("+lanes.CellNetwork+", "+lanes.CellStorage+")")
}

func (f *matrixFlags) matrix(cmd *cobra.Command) error {
	return f.run(cmd, "fresh-matrix", func(ctx context.Context, cfg ultracloud.RunConfig, cl *cluster.Client) (*ultracloud.Report, error) {
		return lanes.FreshMatrix(ctx, cfg, lanes.MatrixOptions{Cluster: cl, Cell: f.cell})
	})
}

func newMatrix() *cobra.Command {
	var f matrixFlags
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "Run fresh-matrix's cells on the running cluster: provider bundles composed, one JUnit testcase per check",
		Example: `  ultracloud cluster matrix
  ultracloud cluster matrix --cell ` + lanes.CellNetwork,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.matrix(cmd) },
	}
	f.add(cmd, false)
	return cmd
}

func newFreshMatrix() *cobra.Command {
	var f matrixFlags
	cmd := &cobra.Command{
		Use:   "fresh-matrix",
		Short: "clean + start fresh-cluster + matrix: the composition proof for provider bundles; the cluster keeps running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.fresh(cmd, func() error { return f.matrix(cmd) })
		},
	}
	f.add(cmd, true)
	return cmd
}
