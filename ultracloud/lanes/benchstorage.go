package lanes

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/cluster"
	"github.com/photoncloud/testkit/ultracloud/doubles"
	"github.com/photoncloud/testkit/ultracloud/fixture"
	"github.com/photoncloud/testkit/ultracloud/storagebench"
)

// ErrRegression: a bench-storage metric is worse than its baseline by
// more than allowed; the error names each.
var ErrRegression = errors.New("storage regression")

// BenchStorageOptions configure fresh-bench-storage.
type BenchStorageOptions struct {
	// Fixture builds the guest when the lane boots its own cluster.
	Fixture *fixture.Builder
	// Cluster is a running cluster (`ultracloud cluster bench-storage`);
	// nil boots the fresh-cluster topology in the run's work dir.
	Cluster cluster.Operator
	// Baseline is an earlier run's bench.json to compare with; the lane
	// fails naming every metric worse by more than MaxRegression.
	Baseline string
	// MaxRegression is the allowed worsening (default 0.2: 20 %).
	MaxRegression float64
	// SizeMiB is the disk region measured (default 32) and Ops the
	// operations of each random pattern (default 1000).
	SizeMiB int
	Ops     int
	// Rounds is how often each measurement runs (default 3), interleaved;
	// every figure is the median over the rounds.
	Rounds int
	// Objects of ObjectSize bytes go through lightningstor (default 16
	// of 256 KiB).
	Objects, ObjectSize int
	// Nodes limits the disk measurements to these nodes (default: all).
	Nodes []string
}

// ParseRegression reads a --max-regression value: "20%", "20" or "0.2".
func ParseRegression(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err == nil && (strings.HasSuffix(strings.TrimSpace(s), "%") || v > 1) {
		v /= 100
	}
	if err != nil || v <= 0 || v >= 10 {
		return 0, fmt.Errorf("%w: max regression %q: want a percentage such as 20%%", ultracloud.ErrInvalid, s)
	}
	return v, nil
}

// FreshBenchStorage is the storage regression lane: inside every node,
// through the guest agent (`/init storage-bench`, package storagebench),
// sequential read and write MB/s, 4 KiB random read and write IOPS and
// fsync latency p50/p99 on its virtio disk with O_DIRECT; object put and
// get throughput through lightningstor, put from one worker and read
// back from another. The results are written as bench.json and drawn as
// bench.svg (artifacts); with a Baseline, every metric worse by more than
// MaxRegression fails the lane, named.
func FreshBenchStorage(ctx context.Context, cfg ultracloud.RunConfig, o BenchStorageOptions) (*ultracloud.Report, error) {
	spec := Spec{Name: "fresh-bench-storage", Topology: ultracloud.TopologyFreshCluster, Fixture: o.Fixture, SSH: true, Persist: true}
	if o.Cluster != nil {
		t := o.Cluster.Topology()
		spec.Topo = &t
	}
	var base *storagebench.Report
	if o.Baseline != "" {
		b, err := storagebench.Load(o.Baseline)
		if err != nil {
			return nil, fmt.Errorf("%w: --baseline: %v", ultracloud.ErrInvalid, err)
		}
		base = &b
	}
	maxWorse := cmp.Or(o.MaxRegression, 0.2)
	return Execute(ctx, cfg, spec, func(ctx context.Context, r *Run) error {
		op, err := onCluster(ctx, r, o.Cluster)
		if err != nil {
			return err
		}
		s, err := newSmoke(r, op, FreshSmokeOptions{}, 1, 0)
		if err != nil {
			return err
		}
		defer s.close()
		if err := s.readiness(ctx); err != nil {
			return err
		}
		rep := storagebench.Report{RunID: r.ID(), Accelerator: string(r.Host().Accelerator), Taken: time.Now().UTC(), Disks: map[string][]storagebench.Result{}}
		for _, want := range o.Nodes {
			if !slices.ContainsFunc(s.topo.Nodes, func(n ultracloud.Node) bool { return n.Name == want }) {
				return fmt.Errorf("%w: node %q is not in topology %s", ultracloud.ErrInvalid, want, s.topo.Name)
			}
		}
		for _, n := range s.topo.Nodes {
			if len(o.Nodes) > 0 && !slices.Contains(o.Nodes, n.Name) {
				continue
			}
			err := r.Step(ctx, n.Name, "disk", func(ctx context.Context) error {
				cmd := fmt.Sprintf("/init storage-bench --size %d --ops %d --rounds %d", cmp.Or(o.SizeMiB, 32), cmp.Or(o.Ops, 1000), cmp.Or(o.Rounds, 3))
				out, err := s.t.run(ctx, n.Name, cmd)
				if err != nil {
					return fmt.Errorf("%s: %w: %s", cmd, err, out)
				}
				var rs []storagebench.Result
				if err := json.Unmarshal([]byte(out), &rs); err != nil {
					return fmt.Errorf("%s: %w: %q", cmd, err, out)
				}
				rep.Disks[n.Name] = rs
				var parts []string
				for _, x := range rs {
					switch x.Kind {
					case storagebench.SeqRead, storagebench.SeqWrite:
						parts = append(parts, fmt.Sprintf("%s %.1f MB/s", x.Name, x.MBps))
					case storagebench.Fsync:
						parts = append(parts, fmt.Sprintf("%s p50 %.2f ms p99 %.2f ms", x.Name, x.P50ms, x.P99ms))
					default:
						parts = append(parts, fmt.Sprintf("%s %.0f IOPS", x.Name, x.IOPS))
					}
				}
				r.Say(n.Name, strings.Join(parts, ", "))
				return nil
			})
			if err != nil {
				return err
			}
		}
		if err := r.Step(ctx, "", "objects", func(ctx context.Context) error { return benchObjects(ctx, r, s, o, &rep) }); err != nil {
			return err
		}
		dir, err := r.Dir("report")
		if err != nil {
			return err
		}
		if err := writeBench(dir, rep, base, r); err != nil {
			return err
		}
		if base == nil {
			return nil
		}
		return r.Step(ctx, "", "baseline", func(context.Context) error {
			regs, err := storagebench.Compare(*base, rep, maxWorse)
			if err != nil {
				return err
			}
			if len(regs) > 0 {
				var names []string
				for _, g := range regs {
					names = append(names, g.String())
				}
				return fmt.Errorf("%w beyond %.0f%% against %s: %s", ErrRegression, maxWorse*100, o.Baseline, strings.Join(names, "; "))
			}
			r.Say("", fmt.Sprintf("no metric worse than %.0f%% against the baseline", maxWorse*100))
			return nil
		})
	})
}

// benchObjects puts objects from the first worker and reads them back
// from another, through lightningstor on a control-plane node.
func benchObjects(ctx context.Context, r *Run, s *smoke, o BenchStorageOptions, rep *storagebench.Report) error {
	var stores, nodes []string
	for _, n := range s.topo.Nodes {
		if slices.Contains(n.Components, "lightningstor") {
			stores = append(stores, n.Name)
		}
		if slices.Contains(n.Components, "node-agent") || slices.Contains(n.Components, "plasmavmc") {
			nodes = append(nodes, n.Name)
		}
	}
	if len(stores) == 0 || len(nodes) < 2 {
		r.Skip("", "objects", fmt.Sprintf("topology %s runs lightningstor on %d node(s) and has %d workers; the measurement needs one and two", s.topo.Name, len(stores), len(nodes)))
		return nil
	}
	// The store's address on the cluster network, from chainfire's
	// member list (node names do not resolve inside the guests).
	host := ""
	ml, err := s.kv.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range ml.Members {
		if m.Name == stores[0] && len(m.ClientURLs) > 0 {
			if u, err := url.Parse(m.ClientURLs[0]); err == nil {
				host = u.Hostname()
			}
		}
	}
	if host == "" {
		return fmt.Errorf("no address of %s in chainfire's member list", stores[0])
	}
	endpoint := fmt.Sprintf("http://%s:%d", host, doubles.LightningstorPort)
	bucket := "bench-" + strings.ToLower(r.ID())
	common := fmt.Sprintf("--endpoint %s --bucket %s --objects %d --size %d", endpoint, bucket, cmp.Or(o.Objects, 16), cmp.Or(o.ObjectSize, 256<<10))
	rounds := cmp.Or(o.Rounds, 3)
	res := storagebench.ObjectResult{PutFrom: nodes[0], GetFrom: nodes[1], Objects: cmp.Or(o.Objects, 16), Size: cmp.Or(o.ObjectSize, 256<<10), Rounds: rounds}
	var puts, gets []float64
	for range rounds {
		for _, step := range []struct {
			node, flag string
			into       *[]float64
		}{{nodes[0], "--put", &puts}, {nodes[1], "--get", &gets}} {
			out, err := s.t.run(ctx, step.node, "/init object-bench "+step.flag+" "+common)
			if err != nil {
				return fmt.Errorf("object-bench %s on %s: %w: %s", step.flag, step.node, err, out)
			}
			var v struct{ MBps, Retries float64 }
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				return fmt.Errorf("object-bench on %s: %w: %q", step.node, err, out)
			}
			*step.into = append(*step.into, v.MBps)
			res.Retries += int(v.Retries)
		}
	}
	res.PutMBps, res.GetMBps = storagebench.MedianOf(puts), storagebench.MedianOf(gets)
	rep.Objects = append(rep.Objects, res)
	retried := ""
	if res.Retries > 0 {
		retried = fmt.Sprintf(" (%d requests retried after a 5xx or a failed connection; their waits are in the figures)", res.Retries)
	}
	r.Say("", fmt.Sprintf("objects via %s: put %.2f MB/s from %s, get %.2f MB/s from %s%s", stores[0], res.PutMBps, res.PutFrom, res.GetMBps, res.GetFrom, retried))
	return nil
}

// writeBench writes bench.json and bench.svg and lists them as artifacts.
func writeBench(dir string, rep storagebench.Report, base *storagebench.Report, r *Run) error {
	for _, f := range []struct {
		name  string
		write func(*os.File) error
	}{
		{"bench.json", func(w *os.File) error { return rep.WriteJSON(w) }},
		{"bench.svg", func(w *os.File) error { return rep.WriteSVG(w, base) }},
	} {
		p := filepath.Join(dir, f.name)
		w, err := os.Create(p)
		if err != nil {
			return err
		}
		err = f.write(w)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		r.Artifact(f.name, p)
	}
	return nil
}
