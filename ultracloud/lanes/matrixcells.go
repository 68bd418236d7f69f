package lanes

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/photoncloud/testkit/ultracloud/doubles"
)

// The seed's matrix cells.
const (
	CellNetwork = "prismnet+flashdns+fiberlb"
	CellStorage = "plasmavmc+coronafs+lightningstor"
)

// MatrixCells returns the seed's cells: the network bundle (a service
// name resolves through flashdns to a fiberlb VIP on prismnet whose
// backends are VMs on two workers; a backend cut off is taken out within
// a bound and used again once back) and the storage bundle (a coronafs
// volume shared between VMs on two workers; an object written by one VM
// read by another through lightningstor).
func MatrixCells() []MatrixCell {
	return []MatrixCell{networkCell(), storageCell()}
}

// The network cell's names.
const (
	mxLB      = "web"
	mxName    = "web." + "ultracloud.internal"
	mxA, mxB  = "mxa", "mxb"
	mxServers = "servers"
)

type mxState struct {
	workers [2]string
	ips     map[string]string // VM → IP
	vip     string
	lbNode  string
}

func mx(m *MatrixEnv) *mxState {
	if s, ok := m.Values[mxServers].(*mxState); ok {
		return s
	}
	s := &mxState{ips: map[string]string{}}
	m.Values[mxServers] = s
	return s
}

func networkCell() MatrixCell {
	return MatrixCell{
		Name:   CellNetwork,
		Bundle: []string{"prismnet", "flashdns", "fiberlb", "plasmavmc"},
		Checks: []MatrixCheck{
			{Name: "backends on two workers", Run: mxBackends},
			{Name: "name resolves to the LB", Run: mxResolve},
			{Name: "requests reach both backends", Run: func(ctx context.Context, m *MatrixEnv) error {
				return mxSpread(ctx, m, []string{mxA, mxB}, "requests through the LB")
			}},
			{Name: "backend cut off is taken out", Run: mxCut},
			{Name: "backend back is used again", Run: mxBack},
		},
		Cleanup: func(ctx context.Context, m *MatrixEnv) {
			s := mx(m)
			if s.workers[0] != "" {
				m.Shell(ctx, s.workers[0], "ip link set pnv-"+mxA+" up")
			}
			if s.lbNode != "" {
				m.API(ctx, s.lbNode, "fiberlb", http.MethodDelete, "/v1/lbs/"+mxLB, "")
			}
			if fd := m.Nodes("flashdns"); len(fd) > 0 {
				m.API(ctx, fd[0], "flashdns", http.MethodDelete, "/v1/records/"+mxName, "")
			}
			m.DeleteVM(ctx, mxA)
			m.DeleteVM(ctx, mxB)
		},
	}
}

// mxBackends creates the two backend VMs (the webapp, answering with its
// hostname in X-Served-By), one per worker.
func mxBackends(ctx context.Context, m *MatrixEnv) error {
	s := mx(m)
	workers := m.Nodes("plasmavmc")
	if len(workers) < 2 {
		return fmt.Errorf("plasmavmc runs on %v; the cell needs two workers", workers)
	}
	s.workers = [2]string{workers[0], workers[1]}
	for i, name := range []string{mxA, mxB} {
		m.DeleteVM(ctx, name) // left by an earlier run
		vm, err := m.CreateVM(ctx, doubles.VMSpec{Name: name, Image: DemoImage, MemoryMiB: 64, Node: s.workers[i],
			Command: []string{"/bin/webapp", "--listen", ":80", "--memory"}})
		if err != nil {
			return err
		}
		s.ips[name] = vm.Status.IP
	}
	return nil
}

// lbStatus reads the LB's status from its node.
func mxStatus(ctx context.Context, m *MatrixEnv, s *mxState) (doubles.LBStatus, error) {
	var st doubles.LBStatus
	code, body, err := m.API(ctx, s.lbNode, "fiberlb", http.MethodGet, "/v1/lbs/"+mxLB, "")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		return st, fmt.Errorf("GET /v1/lbs/%s: %d %s", mxLB, code, body)
	}
	return st, nil
}

func (s *mxState) backend(vm string) string { return net.JoinHostPort(s.ips[vm], "80") }

// mxResolve creates the LB and the DNS name, and resolves the name from a
// worker through another node's flashdns over the cluster network.
func mxResolve(ctx context.Context, m *MatrixEnv) error {
	s := mx(m)
	lbs, dnss := m.Nodes("fiberlb"), m.Nodes("flashdns")
	s.lbNode = lbs[0]
	m.API(ctx, s.lbNode, "fiberlb", http.MethodDelete, "/v1/lbs/"+mxLB, "")
	spec, _ := json.Marshal(doubles.LB{Port: 80, Backends: []string{s.backend(mxA), s.backend(mxB)}})
	if code, body, err := m.API(ctx, s.lbNode, "fiberlb", http.MethodPost, "/v1/lbs/"+mxLB, string(spec)); err != nil || code != http.StatusCreated {
		return fmt.Errorf("create LB %s on %s: %d %s %v", mxLB, s.lbNode, code, body, err)
	}
	err := until(ctx, "LB serving with both backends", m.r.Scaled(time.Minute), func(ctx context.Context) error {
		st, err := mxStatus(ctx, m, s)
		if err != nil {
			return err
		}
		if st.VIP == "" || len(st.Healthy) != 2 {
			return fmt.Errorf("LB %s: VIP %q, healthy %v", mxLB, st.VIP, st.Healthy)
		}
		s.vip = st.VIP
		return nil
	})
	if err != nil {
		return err
	}
	rec, _ := json.Marshal([]string{s.vip})
	if code, body, err := m.API(ctx, dnss[0], "flashdns", http.MethodPut, "/v1/records/"+mxName, string(rec)); err != nil || code != http.StatusNoContent {
		return fmt.Errorf("flashdns record on %s: %d %s %v", dnss[0], code, body, err)
	}
	server := dnss[len(dnss)-1]
	ip, err := m.ClusterIP(ctx, server)
	if err != nil {
		return err
	}
	got, err := m.Resolve(ctx, s.workers[1], net.JoinHostPort(ip, fmt.Sprint(doubles.FlashDNSPort)), mxName)
	if err != nil {
		return err
	}
	if !slices.Equal(got, []string{s.vip}) {
		return invariant("name resolves to the LB", "%s resolves to %v through %s's flashdns, want the VIP %s", mxName, got, server, s.vip)
	}
	m.r.Say("", fmt.Sprintf("%s → %s (fiberlb VIP on %s, backends %s and %s) through %s's flashdns", mxName, s.vip, s.lbNode, s.backend(mxA), s.backend(mxB), server))
	return nil
}

// mxSpread sends requests to the VIP from a worker until it has seen
// each of want answer (and nothing else), within a bound.
func mxSpread(ctx context.Context, m *MatrixEnv, want []string, what string) error {
	s := mx(m)
	seen := map[string]int{}
	err := until(ctx, what, m.r.Scaled(30*time.Second), func(ctx context.Context) error {
		for i := 0; i < 6; i++ {
			code, _, by, err := m.Get(ctx, s.workers[1], "http://"+net.JoinHostPort(s.vip, "80")+"/api/entries")
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("GET through the VIP: %d %v", code, err)
			}
			seen[by]++
		}
		for _, w := range want {
			if seen[w] == 0 {
				return fmt.Errorf("no answer from %s yet (answers: %v)", w, seen)
			}
		}
		return nil
	})
	var others []string
	for by := range seen {
		if !slices.Contains(want, by) {
			others = append(others, by)
		}
	}
	sort.Strings(others)
	if err != nil || len(others) > 0 {
		return invariant(what, "answers %v, want each of %v and no other: %v", seen, want, err)
	}
	m.r.Say("", fmt.Sprintf("%s: answers %v", what, seen))
	return nil
}

// mxCut cuts backend A off the tenant network (its port's link down on
// its worker): fiberlb must take it out within the bound, and every
// request then goes to B.
func mxCut(ctx context.Context, m *MatrixEnv) error {
	s := mx(m)
	if _, err := m.Shell(ctx, s.workers[0], "ip link set pnv-"+mxA+" down"); err != nil {
		return err
	}
	t0 := time.Now()
	m.r.Event(s.workers[0], "fault", "backend "+mxA+" cut off (link down)")
	err := until(ctx, "fiberlb takes "+mxA+" out", m.r.Scaled(20*time.Second), func(ctx context.Context) error {
		st, err := mxStatus(ctx, m, s)
		if err != nil {
			return err
		}
		if !slices.Equal(st.Healthy, []string{s.backend(mxB)}) {
			return fmt.Errorf("healthy backends %v", st.Healthy)
		}
		return nil
	})
	if err != nil {
		return invariant("dead backend taken out", "%v", err)
	}
	d := time.Since(t0)
	m.r.Event(s.workers[0], "detected", fmt.Sprintf("backend-cut: %s out of the LB after %.1fs", mxA, d.Seconds()))
	return mxOnly(ctx, m, mxB)
}

// mxOnly: ten requests through the VIP, every one answered by vm.
func mxOnly(ctx context.Context, m *MatrixEnv, vm string) error {
	s := mx(m)
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		code, _, by, err := m.Get(ctx, s.workers[1], "http://"+net.JoinHostPort(s.vip, "80")+"/api/entries")
		if err != nil || code != http.StatusOK {
			return invariant("requests avoid the dead backend", "request %d through the VIP: %d %v", i+1, code, err)
		}
		seen[by]++
	}
	if seen[vm] != 10 {
		return invariant("requests avoid the dead backend", "answers %v, want all 10 from %s", seen, vm)
	}
	return nil
}

// mxBack puts backend A back: fiberlb must use it again within the bound.
func mxBack(ctx context.Context, m *MatrixEnv) error {
	s := mx(m)
	if _, err := m.Shell(ctx, s.workers[0], "ip link set pnv-"+mxA+" up"); err != nil {
		return err
	}
	t0 := time.Now()
	err := until(ctx, "fiberlb takes "+mxA+" back", m.r.Scaled(20*time.Second), func(ctx context.Context) error {
		st, err := mxStatus(ctx, m, s)
		if err != nil {
			return err
		}
		if len(st.Healthy) != 2 {
			return fmt.Errorf("healthy backends %v", st.Healthy)
		}
		return nil
	})
	if err != nil {
		return invariant("backend back in use", "%v", err)
	}
	m.r.Event(s.workers[0], "recovered", fmt.Sprintf("backend-cut: %s back in the LB after %.1fs", mxA, time.Since(t0).Seconds()))
	return mxSpread(ctx, m, []string{mxA, mxB}, "backend back in use")
}
