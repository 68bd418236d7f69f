package lanes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
	"github.com/photoncloud/testkit/ultracloud/fixture"
)

// MatrixCell is one cell of fresh-matrix: a provider bundle and the
// composition checks that prove its components work together. Users add
// cells in Go (MatrixOptions.Cells).
type MatrixCell struct {
	// Name names the cell (--cell NAME).
	Name string
	// Bundle lists the components the cell enables; each must run on
	// some node of the topology.
	Bundle []string
	// Checks run in order, each one JUnit testcase "<cell>/<check>".
	Checks []MatrixCheck
	// Cleanup runs after the checks, passed or not (removing what the
	// cell created on a cluster that keeps running).
	Cleanup func(ctx context.Context, m *MatrixEnv)
}

// MatrixCheck is one composition check of a cell. A check without Run
// is not built in this release: it is skipped, so the matrix is
// incomplete, never passed.
type MatrixCheck struct {
	Name string
	Run  func(ctx context.Context, m *MatrixEnv) error
}

// MatrixEnv is what a check works with: the run, the cluster, and the
// helpers of the VM and network bundles. State a cell's checks share goes
// in Values.
type MatrixEnv struct {
	*demo
	// Values carry state from one check of a cell to the next.
	Values map[string]any
}

// Run is the lane's run (steps, events, progress lines).
func (m *MatrixEnv) Run() *Run { return m.r }

// Cluster is the cluster the matrix runs on.
func (m *MatrixEnv) Cluster() cluster.Operator { return m.op }

// API sends body to a component's API on node (its port as the guest's
// supervisor assigned it): status and body.
func (m *MatrixEnv) API(ctx context.Context, node, component, method, path, body string) (int, string, error) {
	u, err := m.componentURL(ctx, node, component)
	if err != nil {
		return 0, "", err
	}
	return m.t.send(ctx, node, method, u+path, body, "Content-Type", "application/json")
}

// Get fetches url from node: status, body and the X-Served-By header.
func (m *MatrixEnv) Get(ctx context.Context, node, rawURL string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, "", "", err
	}
	resp, err := m.t.http(node).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(raw), resp.Header.Get("X-Served-By"), err
}

// Resolve asks server (host:port, DNS over TCP) for name's A records,
// from node.
func (m *MatrixEnv) Resolve(ctx context.Context, node, server, name string) ([]string, error) {
	conn, err := m.t.dial(ctx, node, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := &dns.Conn{Conn: conn}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	if err := c.WriteMsg(q); err != nil {
		return nil, err
	}
	r, err := c.ReadMsg()
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s from %s: %s", name, server, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, a := range r.Answer {
		if rec, ok := a.(*dns.A); ok {
			out = append(out, rec.A.String())
		}
	}
	return out, nil
}

// ClusterIP is node's address on the cluster network (from chainfire's
// member list for members, else from the node itself).
func (m *MatrixEnv) ClusterIP(ctx context.Context, node string) (string, error) {
	ml, err := m.kv.MemberList(ctx)
	if err == nil {
		for _, mem := range ml.Members {
			if mem.Name == node && len(mem.ClientURLs) > 0 {
				if u, err := url.Parse(mem.ClientURLs[0]); err == nil {
					return u.Hostname(), nil
				}
			}
		}
	}
	out, err := m.t.run(ctx, node, "ip -4 -o addr show eth1")
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(out) {
		if ip, _, err := net.ParseCIDR(f); err == nil {
			return ip.String(), nil
		}
	}
	return "", fmt.Errorf("no cluster address on %s: %q", node, out)
}

// Nodes lists the nodes running component.
func (m *MatrixEnv) Nodes(component string) []string {
	var out []string
	for _, n := range m.topo.Nodes {
		if slices.Contains(n.Components, component) {
			out = append(out, n.Name)
		}
	}
	return out
}

// CreateVM creates a VM through plasmavmc and waits until it runs.
func (m *MatrixEnv) CreateVM(ctx context.Context, spec doubles.VMSpec) (doubles.VM, error) {
	return m.createVM(ctx, spec)
}

// DeleteVM deletes a VM (a missing one is not an error).
func (m *MatrixEnv) DeleteVM(ctx context.Context, name string) error {
	return m.deleteNamed(ctx, "", name)
}

// Shell runs cmd on node through SSH: stdout, or an error with stderr.
func (m *MatrixEnv) Shell(ctx context.Context, node, cmd string) (string, error) {
	return m.t.run(ctx, node, cmd)
}

// MatrixOptions configure fresh-matrix.
type MatrixOptions struct {
	// Fixture builds the guest (and the VM image the cells run).
	Fixture *fixture.Builder
	// Cluster is a running cluster (`ultracloud cluster matrix`); nil
	// boots the fresh-cluster topology in the run's work dir.
	Cluster cluster.Operator
	// Cells default to MatrixCells().
	Cells []MatrixCell
	// Cell runs one cell only (--cell NAME).
	Cell string
	// Hooks run before the check of the same "<cell>/<check>" name (a
	// test breaking a composition on purpose).
	Hooks map[string]func(ctx context.Context, m *MatrixEnv) error
}

// FreshMatrix is the seed's composition proof for provider bundles: each
// cell's bundle must run in the topology, then its checks run in order,
// one step (one JUnit testcase) each; a failed check ends its cell, the
// next cell still runs.
func FreshMatrix(ctx context.Context, cfg ultracloud.RunConfig, o MatrixOptions) (*ultracloud.Report, error) {
	cells := o.Cells
	if cells == nil {
		cells = MatrixCells()
	}
	if o.Cell != "" {
		var names []string
		var only []MatrixCell
		for _, c := range cells {
			names = append(names, c.Name)
			if c.Name == o.Cell {
				only = append(only, c)
			}
		}
		if len(only) == 0 {
			return nil, fmt.Errorf("%w: cell %q (cells: %s)", ultracloud.ErrInvalid, o.Cell, strings.Join(names, ", "))
		}
		cells = only
	}
	spec := Spec{Name: "fresh-matrix", Topology: ultracloud.TopologyFreshCluster, Fixture: o.Fixture, SSH: true, Persist: true}
	if o.Cluster != nil {
		t := o.Cluster.Topology()
		spec.Topo = &t
	}
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		op, art, err := demoCluster(ctx, r, o.Cluster, o.Fixture)
		if err != nil {
			return err
		}
		d, err := newDemo(r, op, DemoVMWebappOptions{})
		if err != nil {
			return err
		}
		defer d.close()
		if err := d.readiness(ctx); err != nil {
			return err
		}
		if err := r.Step(ctx, "", "image on every worker", func(ctx context.Context) error { return d.upload(ctx, art.WebappImage) }); err != nil {
			return err
		}
		var failed []string
		for _, c := range cells {
			env := &MatrixEnv{demo: d, Values: map[string]any{}}
			var missing []string
			for _, comp := range c.Bundle {
				if len(env.Nodes(comp)) == 0 {
					missing = append(missing, comp)
				}
			}
			if c.Cleanup != nil && len(missing) == 0 {
				defer c.Cleanup(context.WithoutCancel(ctx), env)
			}
			for i, ch := range c.Checks {
				name := c.Name + "/" + ch.Name
				switch {
				case len(missing) > 0:
					r.Skip("", name, fmt.Sprintf("topology %s does not run %s", d.topo.Name, strings.Join(missing, ", ")))
					continue
				case ch.Run == nil:
					r.Skip("", name, "not built in this release of the testkit")
					continue
				}
				err := r.Step(ctx, "", name, func(ctx context.Context) error {
					if h := o.Hooks[name]; h != nil {
						if err := h(ctx, env); err != nil {
							return fmt.Errorf("hook before %s: %w", name, err)
						}
					}
					return ch.Run(ctx, env)
				})
				if err != nil {
					failed = append(failed, name)
					for _, rest := range c.Checks[i+1:] {
						r.Skip("", c.Name+"/"+rest.Name, "an earlier check of the cell failed: "+name)
					}
					break
				}
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("%w: matrix checks failed: %s", ErrInvariant, strings.Join(failed, ", "))
		}
		return nil
	})
}

// onCluster is the cluster a lane on a multi-node topology runs on: the
// running one it was given, or the run's own, booted as a step.
func onCluster(ctx context.Context, r *Run, running cluster.Operator) (cluster.Operator, error) {
	if running != nil {
		return running, nil
	}
	c, err := r.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.Step(ctx, "", "boot", c.BootAll); err != nil {
		return nil, err
	}
	return c, nil
}

// demoCluster is onCluster for the lanes on the VM bundle, with the
// fixture whose VM image they run (the cluster's own, or built by b).
func demoCluster(ctx context.Context, r *Run, running cluster.Operator, b *fixture.Builder) (cluster.Operator, *fixture.Artifacts, error) {
	op, err := onCluster(ctx, r, running)
	if err != nil {
		return nil, nil, err
	}
	if c, ok := op.(*cluster.Cluster); ok && running == nil {
		art, err := c.Fixture(ctx)
		return op, art, err
	}
	if b == nil {
		if b, err = fixture.NewBuilder(); err != nil {
			return nil, nil, err
		}
	}
	art, err := b.Build(ctx)
	return op, art, err
}
