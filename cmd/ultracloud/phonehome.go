package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"github.com/photoncloud/testkit/ultracloud/deployer"
)

// EnvAdminToken is the admin token of `phone-home serve`.
const EnvAdminToken = "ULTRACLOUD_ADMIN_TOKEN"

func newPhoneHome() *cobra.Command {
	cmd := &cobra.Command{Use: "phone-home", Short: "The bare-metal bootstrap server (docs/phone-home.openapi.yaml)"}
	var topoPath, state, listen, publicURL, systemID string
	var plans, bundles []string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve enrolment, plans, bundles and phase reports for a topology's nodes",
		Example: `  ultracloud topology baremetal-iso --json > t.json
  ultracloud phone-home serve --topology t.json --state ./ph --listen 127.0.0.1:8080 \
      --plan baremetal-qemu-worker=worker.json --bundle baremetal-qemu-worker=sys.tar.zst --system-id sys-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(topoPath)
			if err != nil {
				return fmt.Errorf("--topology: %w", err)
			}
			topo, err := ultracloud.ParseTopology(data)
			if err != nil {
				return err
			}
			byNode := func(flag string, vals []string) (map[string]string, error) {
				m := map[string]string{}
				for _, v := range vals {
					node, path, ok := strings.Cut(v, "=")
					if _, known := topo.Node(node); !ok || !known {
						return nil, fmt.Errorf("--%s %q: want NODE=PATH with a node of topology %q", flag, v, topo.Name)
					}
					m[node] = path
				}
				return m, nil
			}
			planFiles, err := byNode("plan", plans)
			if err != nil {
				return err
			}
			bundleFiles, err := byNode("bundle", bundles)
			if err != nil {
				return err
			}
			var specs []deployer.NodeSpec
			for _, n := range topo.Nodes {
				spec := deployer.NodeSpec{Name: n.Name, Role: string(n.Role), Bundle: bundleFiles[n.Name], SystemID: systemID, TargetDisk: "/dev/vda"}
				for _, nic := range n.NICs {
					spec.MACs = append(spec.MACs, nic.MAC)
				}
				if p := planFiles[n.Name]; p != "" {
					if spec.Plan, err = os.ReadFile(p); err != nil {
						return fmt.Errorf("--plan: %w", err)
					}
					plan, err := bootstrap.ParsePlan(spec.Plan)
					if err == nil {
						err = plan.Validate(n.Firmware == ultracloud.FirmwareUEFI)
					}
					if err != nil {
						return fmt.Errorf("plan of %s: %w", n.Name, err)
					}
				}
				specs = append(specs, spec)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			if publicURL == "" {
				publicURL = "http://" + ln.Addr().String()
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv, err := deployer.NewPhoneHomeServer(deployer.ServerConfig{StateDir: state, Nodes: specs, PublicURL: publicURL,
				AdminToken: os.Getenv(EnvAdminToken), Logger: log})
			if err != nil {
				ln.Close()
				return err
			}
			defer srv.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "phone-home serving %d nodes of %q on http://%s (machines use %s)\n", len(specs), topo.Name, ln.Addr(), publicURL)
			return srv.Serve(cmd.Context(), ln)
		},
	}
	serve.Flags().StringVar(&topoPath, "topology", "", "topology JSON (ultracloud topology NAME --json)")
	serve.Flags().StringVar(&state, "state", "phone-home-state", "state directory (bbolt)")
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "listen address")
	serve.Flags().StringVar(&publicURL, "public-url", "", "URL machines reach the server at (default: the listen address)")
	serve.Flags().StringVar(&systemID, "system-id", "", "desired system id")
	serve.Flags().StringArrayVar(&plans, "plan", nil, "NODE=disko.json (repeatable)")
	serve.Flags().StringArrayVar(&bundles, "bundle", nil, "NODE=bundle.tar.zst (repeatable)")
	serve.MarkFlagRequired("topology")
	cmd.AddCommand(serve)
	return cmd
}
