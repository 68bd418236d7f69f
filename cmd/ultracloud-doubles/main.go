// Command ultracloud-doubles runs the fixture guest's control-plane test
// doubles (package doubles) with real distributed behaviour: chainfire is
// a real etcd member, flaredb, iam and lightningstor (S3) keep their state
// in it, prismnet spans the nodes with a VXLAN overlay, plasmavmc runs VMs
// as sandboxes on it (`ultracloud-doubles vm-init` is a sandbox's first
// process) with coronafs volumes attached over NBD (coronafs exports
// them from the control-plane nodes' disks), node-agent heartbeats through
// its leases and fleet-scheduler is elected through it.
// The fixture packs it as /bin/ultracloud-doubles; the guest's unit
// supervisor runs a component NAME as
//
//	ultracloud-doubles NAME --port PORT
//
// when NAME is one it lists (ultracloud-doubles --list). The cluster comes
// from the kernel command line: ultracloud.hostname= (this node) and
// ultracloud.chainfire=NAME=IP,… (the chainfire members); optional
// ultracloud.doubles.ttl= sets the heartbeat and leadership TTL.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/ultracloud/doubles"
)

var names = []string{"chainfire", "flaredb", "iam", "lightningstor", "prismnet", "plasmavmc", "coronafs", "flashdns", "fiberlb", "node-agent", "fleet-scheduler"}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == "vm-init" {
		// A plasmavmc sandbox's first process: it only returns on failure.
		fmt.Fprintf(os.Stderr, "vm-init: %v\n", doubles.VMInit(args[1:]))
		return 1
	}
	if len(args) == 1 && args[0] == "--list" {
		fmt.Println(strings.Join(names, "\n"))
		return 0
	}
	if len(args) == 0 || !slices.Contains(names, args[0]) {
		fmt.Fprintf(os.Stderr, "usage: ultracloud-doubles NAME --port N (NAME: %s) | --list\n", strings.Join(names, ", "))
		return 2
	}
	name := args[0]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	port := fs.Int("port", 0, "health/API port")
	fail := fs.Bool("fail", false, "exit 1 at once (a failing service)")
	cmdlinePath := fs.String("cmdline", "/proc/cmdline", "kernel command line to read the cluster from")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})).With("double", name)
	if *fail {
		log.Error("configured to fail (ultracloud.fail)")
		return 1
	}
	raw, err := os.ReadFile(*cmdlinePath)
	if err != nil {
		log.Error("read kernel command line", "err", err)
		return 1
	}
	args2 := kernelArgs(string(raw))
	node := args2["ultracloud.hostname"]
	if node == "" {
		node, _ = os.Hostname()
	}
	members, err := doubles.ParseMembers(args2["ultracloud.chainfire"])
	if err != nil {
		log.Error("ultracloud.chainfire= lists the chainfire members as NAME=IP,…", "err", err)
		return 1
	}
	ttl := 10 * time.Second
	if v := args2["ultracloud.doubles.ttl"]; v != "" {
		if ttl, err = time.ParseDuration(v); err != nil || ttl < 2*time.Second {
			log.Error("ultracloud.doubles.ttl= wants a duration of at least 2s, e.g. 10s", "value", v)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	health := fmt.Sprintf("127.0.0.1:%d", *port)
	if name == "chainfire" {
		err = doubles.RunChainfire(ctx, doubles.ChainfireConfig{Name: node, Members: members, DataDir: "/var/lib/chainfire", HealthAddr: health}, log)
	} else {
		err = client(ctx, name, node, members, health, ttl, log)
	}
	if err != nil {
		log.Error("exiting", "err", err)
		return 1
	}
	return 0
}

func client(ctx context.Context, name, node string, members []doubles.Member, health string, ttl time.Duration, log *slog.Logger) error {
	cli, err := doubles.Connect(doubles.Endpoints(members, doubles.ClientPort), nil)
	if err != nil {
		return err
	}
	defer cli.Close()
	switch name {
	case "flaredb":
		return doubles.RunFlareDB(ctx, health, cli, log)
	case "iam":
		return doubles.RunIAM(ctx, health, node, cli, log)
	case "lightningstor":
		return doubles.RunLightningstor(ctx, health, cli, log, fmt.Sprintf(":%d", doubles.LightningstorPort))
	case "plasmavmc":
		var storage []string
		for _, m := range members {
			storage = append(storage, net.JoinHostPort(m.Host, fmt.Sprint(doubles.LightningstorPort)))
		}
		return doubles.RunPlasmavmc(ctx, doubles.PlasmavmcConfig{Node: node, HealthAddr: health, TTL: ttl, Storage: storage,
			Prismnet: componentURL("prismnet")}, cli, log)
	case "prismnet":
		underlay, err := clusterIP(members)
		if err != nil {
			return err
		}
		return doubles.RunPrismnet(ctx, doubles.PrismnetConfig{Node: node, Underlay: underlay, HealthAddr: health, TTL: ttl}, cli, log)
	case "coronafs":
		addr, err := clusterIP(members)
		if err != nil {
			return err
		}
		return doubles.RunCoronafs(ctx, doubles.CoronafsConfig{Node: node, HealthAddr: health, Addr: addr}, cli, log)
	case "flashdns":
		return doubles.RunFlashDNS(ctx, health, fmt.Sprintf(":%d", doubles.FlashDNSPort), cli, log)
	case "fiberlb":
		return doubles.RunFiberLB(ctx, doubles.FiberLBConfig{Node: node, HealthAddr: health, TTL: ttl, Prismnet: componentURL("prismnet")}, cli, log)
	case "fleet-scheduler":
		return doubles.RunScheduler(ctx, doubles.SchedulerConfig{Node: node, TTL: ttl, HealthAddr: health}, cli, log)
	default: // node-agent
		addr, err := clusterIP(members)
		if err != nil {
			return err
		}
		return doubles.RunNodeAgent(ctx, doubles.NodeAgentConfig{Node: node, Addr: addr, TTL: ttl, HealthAddr: health, ErrorFile: "/run/ultracloud/persist-error"}, cli, log)
	}
}

// componentURL returns the base URL of another component on this node,
// from the port the guest's supervisor gave it.
func componentURL(name string) func() (string, error) {
	return func() (string, error) {
		raw, err := os.ReadFile("/run/ultracloud/components/" + name + ".port")
		if err != nil {
			return "", fmt.Errorf("%s does not run on this node: %w", name, err)
		}
		return "http://127.0.0.1:" + strings.TrimSpace(string(raw)), nil
	}
}

// clusterIP is this node's address on the network the chainfire members
// are on (the source address of a route to the first member).
func clusterIP(members []doubles.Member) (string, error) {
	c, err := net.Dial("udp", net.JoinHostPort(members[0].Host, "2379"))
	if err != nil {
		return "", fmt.Errorf("no route to chainfire member %s: %w", members[0].Host, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

// kernelArgs parses key=value words of a kernel command line (the last
// of a repeated key wins).
func kernelArgs(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}
