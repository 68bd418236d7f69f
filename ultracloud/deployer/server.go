package deployer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/photoncloud/testkit/ultracloud/bootstrap"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bounds on what a client can make the server hold.
const (
	// maxBody bounds every request body (an identity is well under 1 KiB).
	maxBody = 16 << 10
	// maxDiscovered bounds the unmatched machines kept; the oldest go first.
	maxDiscovered = 256
	// maxPhaseHistory bounds a node's recorded phase events; the oldest go.
	maxPhaseHistory = 64
	// defaultBodyTimeout bounds how long a request body may take to arrive.
	defaultBodyTimeout = 10 * time.Second
	// minBundleRate is the slowest bundle download allowed (bytes/s), on
	// top of 30 s.
	minBundleRate = 256 << 10
)

// NodeSpec is what the server knows about one node of the topology.
type NodeSpec struct {
	Name string
	Role string
	// Selectors, most specific first: MachineID, then Serial, then MACs.
	MachineID string
	Serial    string
	MACs      []string
	// Plan is the node's disko plan (disko's JSON).
	Plan []byte
	// TargetDisk is the device the installer applies the plan to.
	TargetDisk string
	// Bundle is the path of the node's bundle on the host.
	Bundle string
	// SystemID is the desired system.
	SystemID string
	// EnrolSecret is a one-time secret the harness hands the machine out of
	// band (SMBIOS OEM string or kernel command line
	// ultracloud.enrol-secret=…). A node with a secret enrols only with
	// it; once used, re-enrolment needs the node's current token or the
	// admin token.
	EnrolSecret string
}

// ServerConfig configures a PhoneHomeServer.
type ServerConfig struct {
	// StateDir holds the bbolt state file (phone-home.db).
	StateDir string
	// Nodes are the machines the server can enrol.
	Nodes []NodeSpec
	// PublicURL is the base URL machines reach the server at (e.g.
	// http://10.0.2.100 through QEMU's guestfwd); bundle URLs use it.
	PublicURL string
	// AdminToken opens /api/v1/admin/*; empty disables the admin API over
	// HTTP (the in-process API always works).
	AdminToken string
	// RunID names the run this server serves. Enrolments and every phase
	// event are stamped with it, and WaitPhase accepts only events of this
	// run: a server reopened on the state of an earlier run never satisfies
	// a wait with that run's phases. Empty: events are not scoped (a
	// standalone server that continues across restarts).
	RunID string
	// RequireEnrolSecret refuses to start unless every node has an
	// EnrolSecret (the lanes' default): knowing a MAC is then not enough
	// to take a node.
	RequireEnrolSecret bool
	// BodyTimeout bounds how long a request body may take to arrive
	// (default 10 s).
	BodyTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

type bundleInfo struct {
	path string
	sha  string
	size int64
	mod  time.Time
}

// nodeState is a node's persisted state.
type nodeState struct {
	Name string `json:"name"`
	// Version increases with every change; a write never replaces a newer one.
	Version    uint64              `json:"version"`
	TokenHash  string              `json:"tokenHash,omitempty"`
	Attempt    int                 `json:"attempt"`
	Identity   *bootstrap.Identity `json:"identity,omitempty"`
	EnrolledAt time.Time           `json:"enrolledAt,omitzero"`
	// Run is the run id of the current enrolment.
	Run string `json:"run,omitempty"`
	// SecretUsed: the one-time enrolment secret has been used.
	SecretUsed bool                   `json:"secretUsed,omitempty"`
	Phases     []bootstrap.PhaseEvent `json:"phases"`
	// Desired is the lifecycle state an admin asked for ("" = active).
	Desired bootstrap.Lifecycle `json:"desired,omitempty"`
	// Decommissioned: the node reported decommissioned; its token is
	// revoked and it enrols again only once ReenrolApproved.
	Decommissioned  bool `json:"decommissioned,omitempty"`
	ReenrolApproved bool `json:"reenrolApproved,omitempty"`
	// RevokedHash is the token revoked by the decommissioned report: a
	// retry of that report is answered as recorded, nothing else.
	RevokedHash string `json:"revokedHash,omitempty"`
}

// lifecycle is the node's desired lifecycle state.
func (n *nodeState) lifecycle() bootstrap.Lifecycle {
	if n.Desired == "" {
		return bootstrap.LifecycleActive
	}
	return n.Desired
}

// current returns the phase of the current attempt ("" before any).
func (n *nodeState) current() (bootstrap.PhaseEvent, bool) {
	if len(n.Phases) == 0 || n.Phases[len(n.Phases)-1].Attempt != n.Attempt {
		return bootstrap.PhaseEvent{}, false
	}
	return n.Phases[len(n.Phases)-1], true
}

// Discovery is a machine that phoned home but matched no node.
type Discovery struct {
	Identity bootstrap.Identity `json:"identity"`
	Reason   string             `json:"reason"`
	At       time.Time          `json:"at"`
}

// NodeStatus is a node's view for the harness.
type NodeStatus struct {
	Name       string                 `json:"name"`
	Enrolled   bool                   `json:"enrolled"`
	Attempt    int                    `json:"attempt"`
	Run        string                 `json:"run,omitempty"`
	EnrolledAt time.Time              `json:"enrolledAt,omitzero"`
	Phase      bootstrap.Phase        `json:"phase,omitempty"`
	Phases     []bootstrap.PhaseEvent `json:"phases"`
	// Lifecycle is the state the deployer wants the node in.
	Lifecycle bootstrap.Lifecycle `json:"lifecycle"`
	// Decommissioned: the node wiped its credentials; its token is revoked.
	Decommissioned bool `json:"decommissioned,omitempty"`
	// ReenrolApproved: an admin let the decommissioned node enrol again.
	ReenrolApproved bool `json:"reenrolApproved,omitempty"`
}

var (
	bucketNodes      = []byte("nodes")
	bucketDiscovered = []byte("discovered")
)

// PhoneHomeServer enrols machines, hands out their plans and bundles, and
// records the phases they report. State is in bbolt, fsynced on every
// accepted report, so a restarted server keeps every enrolment, token and
// phase. Use Handler with any http.Server, or Serve.
type PhoneHomeServer struct {
	cfg     ServerConfig
	log     *slog.Logger
	db      *bolt.DB
	specs   map[string]NodeSpec
	bundles map[string]bundleInfo // by node
	byKey   map[string][]string   // "machine-id:x", "serial:x", "mac:x" → nodes

	mu      sync.Mutex
	state   map[string]*nodeState
	tokens  map[string]string // token hash → node
	changed chan struct{}
	subs    map[int]chan bootstrap.PhaseEvent
	nextSub int
	// locks serialise each node's decide-persist-apply (enrolments and
	// phase reports); different nodes proceed (and batch) in parallel.
	locks map[string]*sync.Mutex
	// discMu serialises the discovered bucket's capped writes.
	discMu sync.Mutex
	// failSave, in tests, makes persisting fail.
	failSave func() error
}

// NewPhoneHomeServer opens (or creates) the state in cfg.StateDir and
// checks the node specs: unique names, no selector shared by two nodes,
// readable bundles.
func NewPhoneHomeServer(cfg ServerConfig) (*PhoneHomeServer, error) {
	s := &PhoneHomeServer{cfg: cfg, log: cfg.Logger, specs: map[string]NodeSpec{}, bundles: map[string]bundleInfo{},
		state: map[string]*nodeState{}, tokens: map[string]string{}, changed: make(chan struct{}), subs: map[int]chan bootstrap.PhaseEvent{},
		byKey: map[string][]string{}, locks: map[string]*sync.Mutex{}}
	if s.cfg.BodyTimeout <= 0 {
		s.cfg.BodyTimeout = defaultBodyTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]string{}
	claim := func(kind, v, node string) error {
		if v == "" {
			return nil
		}
		key := kind + ":" + strings.ToLower(v)
		if other, dup := seen[key]; dup {
			return fmt.Errorf("phone-home: %s %s selects both %q and %q", kind, v, other, node)
		}
		seen[key] = node
		s.byKey[key] = append(s.byKey[key], node)
		return nil
	}
	bySHA := map[string]bundleInfo{}
	for _, n := range cfg.Nodes {
		if n.Name == "" {
			return nil, errors.New("phone-home: a node without a name")
		}
		if _, dup := s.specs[n.Name]; dup {
			return nil, fmt.Errorf("phone-home: node %q twice", n.Name)
		}
		for _, err := range []error{claim("machine-id", n.MachineID, n.Name), claim("serial", n.Serial, n.Name)} {
			if err != nil {
				return nil, err
			}
		}
		for _, m := range n.MACs {
			if err := claim("mac", m, n.Name); err != nil {
				return nil, err
			}
		}
		if n.MachineID == "" && n.Serial == "" && len(n.MACs) == 0 {
			return nil, fmt.Errorf("phone-home: node %q has no selector (machine-id, serial or MAC)", n.Name)
		}
		s.specs[n.Name] = n
		s.locks[n.Name] = &sync.Mutex{}
		if cfg.RequireEnrolSecret && n.EnrolSecret == "" {
			return nil, fmt.Errorf("phone-home: node %q has no EnrolSecret, and RequireEnrolSecret is set; give every node one (the lanes pass it as an SMBIOS OEM string)", n.Name)
		}
		if n.Bundle != "" {
			bi, err := hashBundle(n.Bundle)
			if err != nil {
				return nil, fmt.Errorf("phone-home: bundle of %q: %w", n.Name, err)
			}
			s.bundles[n.Name] = bi
			bySHA[bi.sha] = bi
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(cfg.StateDir, "phone-home.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("phone-home state %s: %w", cfg.StateDir, err)
	}
	s.db = db
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNodes, bucketDiscovered} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var ns nodeState
			if err := json.Unmarshal(v, &ns); err != nil {
				return fmt.Errorf("node %s: %w", k, err)
			}
			s.state[ns.Name] = &ns
			if ns.TokenHash != "" {
				s.tokens[ns.TokenHash] = ns.Name
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("phone-home state: %w", err)
	}
	return s, nil
}

func hashBundle(p string) (bundleInfo, error) {
	st, err := os.Stat(p)
	if err != nil {
		return bundleInfo{}, err
	}
	sum, err := bootstrap.FileSHA256(p)
	if err != nil {
		return bundleInfo{}, err
	}
	return bundleInfo{path: p, sha: sum, size: st.Size(), mod: st.ModTime()}, nil
}

// Close closes the state file.
func (s *PhoneHomeServer) Close() error { return s.db.Close() }

// Serve serves the API on ln until ctx ends, then shuts down gracefully.
func (s *PhoneHomeServer) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	}
}

// route is one API route; the OpenAPI document lists the same set.
type route struct {
	method, pattern string
	handler         http.HandlerFunc
}

func (s *PhoneHomeServer) routes() []route {
	return []route{
		{"POST", "/api/v1/phone-home", s.handlePhoneHome},
		{"GET", "/api/v1/bundles/{sha256}", s.handleBundle},
		{"HEAD", "/api/v1/bundles/{sha256}", s.handleBundle},
		{"POST", "/api/v1/nodes/{name}/phase", s.handlePhase},
		{"GET", "/api/v1/nodes/{name}/desired", s.handleDesired},
		{"GET", "/api/v1/admin/nodes", s.admin(s.handleAdminNodes)},
		{"POST", "/api/v1/admin/nodes/{name}/drain", s.admin(s.handleLifecycle(s.Drain))},
		{"POST", "/api/v1/admin/nodes/{name}/decommission", s.admin(s.handleLifecycle(s.Decommission))},
		{"POST", "/api/v1/admin/nodes/{name}/reenrol", s.admin(s.handleLifecycle(s.ApproveReenrol))},
		{"GET", "/api/v1/admin/discovered", s.admin(s.handleAdminDiscovered)},
	}
}

// Handler is the HTTP API.
func (s *PhoneHomeServer) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.routes() {
		mux.HandleFunc(r.method+" "+r.pattern, r.handler)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, rt := range s.routes() {
			if routePath(rt.pattern).MatchString(r.URL.Path) && !slices.Contains(allow, rt.method) {
				allow = append(allow, rt.method)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s; see docs/phone-home.openapi.yaml", r.Method, r.URL.Path))
	})
	return mux
}

// routePath turns a route pattern into a regexp of the paths it matches.
func routePath(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(pattern), `[^/]+`) + "$")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// decode reads a size- and time-limited, strict JSON body: unknown fields,
// keys that differ from the field names in case, duplicate keys and
// trailing values are refused.
func (s *PhoneHomeServer) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody))
		case errors.Is(err, os.ErrDeadlineExceeded):
			writeError(w, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s", s.cfg.BodyTimeout))
		default:
			writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		}
		return false
	}
	if err := StrictJSON(data, v); err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	return true
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// authNode returns the node a bearer token belongs to.
func (s *PhoneHomeServer) authNode(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ok := s.tokens[hashToken(tok)]
	return name, ok
}

func (s *PhoneHomeServer) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.cfg.AdminToken == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
			writeError(w, http.StatusUnauthorized, "admin token required (Authorization: Bearer …)")
			return
		}
		h(w, r)
	}
}

// match finds the node for an identity: machine-id, then serial, then MAC.
func (s *PhoneHomeServer) match(id bootstrap.Identity) (NodeSpec, error) {
	if id.MachineID != "" {
		if n := s.byKey["machine-id:"+strings.ToLower(id.MachineID)]; len(n) == 1 {
			return s.specs[n[0]], nil
		}
	}
	if id.Serial != "" {
		if n := s.byKey["serial:"+strings.ToLower(id.Serial)]; len(n) == 1 {
			return s.specs[n[0]], nil
		}
	}
	var byMAC []string
	for _, m := range id.MACs {
		for _, n := range s.byKey["mac:"+strings.ToLower(m)] {
			if !slices.Contains(byMAC, n) {
				byMAC = append(byMAC, n)
			}
		}
	}
	switch len(byMAC) {
	case 1:
		return s.specs[byMAC[0]], nil
	case 0:
		return NodeSpec{}, fmt.Errorf("%w: no node has machine-id %q, serial %q or one of MACs %v", bootstrap.ErrUnknownMachine, id.MachineID, id.Serial, id.MACs)
	}
	slices.Sort(byMAC)
	return NodeSpec{}, fmt.Errorf("%w: MACs %v match several nodes %v; give the machine a machine-id or serial selector", bootstrap.ErrUnknownMachine, id.MACs, byMAC)
}

// save persists ns durably (bbolt fsyncs each commit; concurrent saves
// share one through Batch) and never replaces a newer version.
func (s *PhoneHomeServer) save(ns nodeState) error {
	if s.failSave != nil {
		if err := s.failSave(); err != nil {
			return err
		}
	}
	data, err := json.Marshal(ns)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if old := b.Get([]byte(ns.Name)); old != nil {
			var prev struct {
				Version uint64 `json:"version"`
			}
			if json.Unmarshal(old, &prev) == nil && prev.Version > ns.Version {
				return nil
			}
		}
		return b.Put([]byte(ns.Name), data)
	})
}

func (s *PhoneHomeServer) handlePhoneHome(w http.ResponseWriter, r *http.Request) {
	var id bootstrap.Identity
	if !s.decode(w, r, &id) {
		return
	}
	if err := id.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	spec, err := s.match(id)
	if err != nil {
		s.discovered(id, err)
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	// Decide, persist, and only then apply in memory, under the node's
	// lock: a failed persist changes nothing, a concurrent report of the
	// same node waits.
	lock := s.locks[spec.Name]
	lock.Lock()
	defer lock.Unlock()
	s.mu.Lock()
	ns := s.state[spec.Name]
	if ns == nil {
		ns = &nodeState{Name: spec.Name, Phases: []bootstrap.PhaseEvent{}}
	}
	next := *ns
	s.mu.Unlock()
	if code, err := s.admit(r, spec, &next, id); err != nil {
		s.log.Warn("enrolment refused", "node", spec.Name, "reason", err)
		writeError(w, code, err.Error())
		return
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token := hex.EncodeToString(raw)
	next.TokenHash = hashToken(token)
	next.Attempt++
	next.Version++
	next.Identity = &id
	next.EnrolledAt = time.Now().UTC()
	next.Run = s.cfg.RunID
	if err := s.save(next); err != nil {
		writeError(w, http.StatusInternalServerError, "persist enrolment: "+err.Error())
		return
	}
	s.mu.Lock()
	if ns.TokenHash != "" {
		delete(s.tokens, ns.TokenHash)
	}
	s.state[spec.Name] = &next
	s.tokens[next.TokenHash] = spec.Name
	s.mu.Unlock()
	s.broadcast(bootstrap.PhaseEvent{Node: spec.Name, Phase: "enrolled", At: next.EnrolledAt, Attempt: next.Attempt, Run: next.Run})
	s.log.Info("machine enrolled", "node", spec.Name, "attempt", next.Attempt)
	e := bootstrap.Enrollment{Node: spec.Name, Role: spec.Role, Token: token, Plan: spec.Plan, TargetDisk: spec.TargetDisk, SystemID: spec.SystemID, Run: next.Run}
	if bi, ok := s.bundles[spec.Name]; ok {
		e.Bundle = bootstrap.BundleRef{URL: strings.TrimRight(s.cfg.PublicURL, "/") + "/api/v1/bundles/" + bi.sha, Size: bi.size, SHA256: bi.sha}
	}
	writeJSON(w, http.StatusOK, e)
}

// admit applies the enrolment policy to a node with a secret: its first
// enrolment needs the one-time secret (then spent); a re-enrolment needs
// the node's current token or the admin token.
func (s *PhoneHomeServer) admit(r *http.Request, spec NodeSpec, next *nodeState, id bootstrap.Identity) (int, error) {
	if next.Decommissioned {
		if !next.ReenrolApproved {
			return http.StatusForbidden, fmt.Errorf("%w: node %q is decommissioned; an admin approves its re-enrolment (PhoneHomeServer.ApproveReenrol or POST /api/v1/admin/nodes/%s/reenrol)", bootstrap.ErrForbidden, spec.Name, spec.Name)
		}
		next.Decommissioned, next.ReenrolApproved, next.Desired, next.RevokedHash = false, false, "", ""
		return 0, nil
	}
	if spec.EnrolSecret == "" {
		return 0, nil
	}
	if !next.SecretUsed {
		if subtle.ConstantTimeCompare([]byte(id.EnrolSecret), []byte(spec.EnrolSecret)) != 1 {
			return http.StatusForbidden, fmt.Errorf("%w: node %q enrols only with its enrolment secret (SMBIOS OEM string or ultracloud.enrol-secret=)", bootstrap.ErrForbidden, spec.Name)
		}
		next.SecretUsed = true
		return 0, nil
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	isAdmin := s.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) == 1
	isNode := tok != "" && next.TokenHash != "" && subtle.ConstantTimeCompare([]byte(hashToken(tok)), []byte(next.TokenHash)) == 1
	if !isAdmin && !isNode {
		return http.StatusForbidden, fmt.Errorf("%w: node %q is enrolled and its secret is spent; re-enrolment needs its current token or the admin token", bootstrap.ErrForbidden, spec.Name)
	}
	return 0, nil
}

// discovered records an unmatched machine, keeping at most maxDiscovered
// (the oldest are evicted).
func (s *PhoneHomeServer) discovered(id bootstrap.Identity, reason error) {
	d := Discovery{Identity: id, Reason: reason.Error(), At: time.Now().UTC()}
	key := id.MachineID
	if key == "" && len(id.MACs) > 0 {
		key = strings.ToLower(id.MACs[0])
	}
	if key == "" {
		key = id.Serial
	}
	data, _ := json.Marshal(d)
	s.discMu.Lock()
	s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDiscovered)
		if b.Get([]byte("m:"+key)) == nil && b.Stats().KeyN >= maxDiscovered {
			var oldestKey []byte
			var oldest time.Time
			b.ForEach(func(k, v []byte) error {
				var o Discovery
				if json.Unmarshal(v, &o) == nil && (oldestKey == nil || o.At.Before(oldest)) {
					oldestKey, oldest = slices.Clone(k), o.At
				}
				return nil
			})
			if oldestKey != nil {
				b.Delete(oldestKey)
			}
		}
		return b.Put([]byte("m:"+key), data)
	})
	s.discMu.Unlock()
	s.log.Warn("unknown machine phoned home", "identity", id, "reason", reason)
	s.broadcast(bootstrap.PhaseEvent{Node: "", Phase: "discovered", Reason: reason.Error(), At: d.At})
}

func (s *PhoneHomeServer) handleBundle(w http.ResponseWriter, r *http.Request) {
	node, ok := s.authNode(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "a node token is required (Authorization: Bearer <token from phone-home>)")
		return
	}
	sha := r.PathValue("sha256")
	bi, ok := s.bundles[node]
	if !ok || bi.sha != sha {
		writeError(w, http.StatusForbidden, fmt.Sprintf("node %q is not assigned bundle %s", node, sha))
		return
	}
	f, err := os.Open(bi.path)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "bundle unavailable: "+err.Error())
		return
	}
	defer f.Close()
	// Downloads get a rate-based allowance, not forever.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30*time.Second + time.Duration(bi.size/minBundleRate)*time.Second))
	w.Header().Set("ETag", `"`+bi.sha+`"`)
	w.Header().Set("Content-Type", "application/zstd")
	w.Header().Set("X-Content-SHA256", bi.sha)
	http.ServeContent(w, r, "", bi.mod, f)
}

// requireNode answers 401/403 unless the request's token is {name}'s.
func (s *PhoneHomeServer) requireNode(w http.ResponseWriter, r *http.Request) (string, bool) {
	node, ok := s.authNode(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "a node token is required")
		return "", false
	}
	if name := r.PathValue("name"); name != node {
		writeError(w, http.StatusForbidden, fmt.Sprintf("this token belongs to %q, not %q", node, name))
		return "", false
	}
	return node, true
}

func (s *PhoneHomeServer) handleDesired(w http.ResponseWriter, r *http.Request) {
	if node, ok := s.requireNode(w, r); ok {
		s.mu.Lock()
		l := bootstrap.LifecycleActive
		if ns := s.state[node]; ns != nil {
			l = ns.lifecycle()
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, bootstrap.Desired{SystemID: s.specs[node].SystemID, Lifecycle: l})
	}
}

func (s *PhoneHomeServer) handlePhase(w http.ResponseWriter, r *http.Request) {
	node, ok := s.requireNode(w, r)
	if !ok {
		return
	}
	var rep bootstrap.PhaseReport
	if !s.decode(w, r, &rep) {
		return
	}
	if !rep.Phase.Valid() {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown phase %q; phases are %v, then %v, and failed", rep.Phase, bootstrap.Phases(), bootstrap.LifecyclePhases()))
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	code, ev, err := s.record(node, hashToken(tok), rep)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, code, ev)
}

// record applies a phase report of the token tokenHash; it returns the
// HTTP status to answer. Under the node's lock the token is checked again
// (a re-enrolment since the request began revokes it), the report is made
// durable (fsynced), and only then applied in memory and acknowledged.
func (s *PhoneHomeServer) record(node, tokenHash string, rep bootstrap.PhaseReport) (int, bootstrap.PhaseEvent, error) {
	lock := s.locks[node]
	lock.Lock()
	defer lock.Unlock()
	s.mu.Lock()
	ns := s.state[node]
	if ns != nil && ns.RevokedHash != "" && ns.RevokedHash == tokenHash && rep.Phase == bootstrap.PhaseDecommissioned {
		cur, _ := ns.current()
		s.mu.Unlock()
		return http.StatusOK, cur, nil // a retried decommissioned report
	}
	if ns == nil || ns.TokenHash != tokenHash {
		s.mu.Unlock()
		return http.StatusUnauthorized, bootstrap.PhaseEvent{}, fmt.Errorf("%w: this token of %s was revoked by a re-enrolment; phone home again", bootstrap.ErrForbidden, node)
	}
	cur, has := ns.current()
	if has && cur.Phase == rep.Phase {
		s.mu.Unlock()
		return http.StatusOK, cur, nil // a retried report: already recorded
	}
	if has && cur.Phase == bootstrap.PhaseFailed {
		s.mu.Unlock()
		return http.StatusConflict, bootstrap.PhaseEvent{}, fmt.Errorf("%w: %s already reported failed (%s); phone home again to retry", bootstrap.ErrConflict, node, cur.Reason)
	}
	if rep.Phase != bootstrap.PhaseFailed && has && rep.Phase.Rank() < cur.Phase.Rank() {
		s.mu.Unlock()
		return http.StatusConflict, bootstrap.PhaseEvent{}, fmt.Errorf("%w: %s is at %s; phases only move forward (got %s)", bootstrap.ErrConflict, node, cur.Phase, rep.Phase)
	}
	if err := lifecycleAllows(ns, rep.Phase); err != nil {
		s.mu.Unlock()
		return http.StatusConflict, bootstrap.PhaseEvent{}, err
	}
	ev := bootstrap.PhaseEvent{Node: node, Phase: rep.Phase, Reason: rep.Reason, At: time.Now().UTC(), Attempt: ns.Attempt, Run: ns.Run, System: rep.System}
	next := *ns
	if rep.Phase == bootstrap.PhaseDecommissioned {
		next.Decommissioned, next.RevokedHash, next.TokenHash = true, ns.TokenHash, ""
	}
	next.Version++
	next.Phases = append(slices.Clone(ns.Phases), ev)
	if len(next.Phases) > maxPhaseHistory {
		next.Phases = slices.Clone(next.Phases[len(next.Phases)-maxPhaseHistory:])
	}
	s.mu.Unlock()
	if err := s.save(next); err != nil {
		return http.StatusInternalServerError, bootstrap.PhaseEvent{}, fmt.Errorf("persist phase: %w", err)
	}
	s.mu.Lock()
	s.state[node] = &next
	if next.TokenHash == "" {
		delete(s.tokens, tokenHash)
	}
	s.mu.Unlock()
	s.broadcast(ev)
	s.log.Info("phase", "node", node, "phase", rep.Phase, "reason", rep.Reason)
	return http.StatusOK, ev, nil
}

func (s *PhoneHomeServer) notifyLocked(ev bootstrap.PhaseEvent) {
	close(s.changed)
	s.changed = make(chan struct{})
	for _, ch := range s.subs {
		select {
		case ch <- ev:
		default: // a slow subscriber misses events, never blocks the server
		}
	}
}

func (s *PhoneHomeServer) broadcast(ev bootstrap.PhaseEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notifyLocked(ev)
}

// Subscribe returns a channel of events (enrolments, phases, discovered
// machines) and a function that ends the subscription. A subscriber that
// does not keep up misses events; the state stays authoritative.
func (s *PhoneHomeServer) Subscribe() (<-chan bootstrap.PhaseEvent, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan bootstrap.PhaseEvent, 256)
	id := s.nextSub
	s.nextSub++
	s.subs[id] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[id]; ok {
			delete(s.subs, id)
			close(ch)
		}
	}
}

// Nodes returns every node with its phase history, sorted by name.
func (s *PhoneHomeServer) Nodes() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []NodeStatus
	for _, name := range slices.Sorted(maps.Keys(s.specs)) {
		st := NodeStatus{Name: name, Phases: []bootstrap.PhaseEvent{}, Lifecycle: bootstrap.LifecycleActive}
		if ns := s.state[name]; ns != nil {
			st.Enrolled, st.Attempt, st.EnrolledAt, st.Run = ns.TokenHash != "", ns.Attempt, ns.EnrolledAt, ns.Run
			st.Phases = slices.Clone(ns.Phases)
			st.Lifecycle, st.Decommissioned, st.ReenrolApproved = ns.lifecycle(), ns.Decommissioned, ns.ReenrolApproved
			if cur, ok := ns.current(); ok {
				st.Phase = cur.Phase
			}
		}
		out = append(out, st)
	}
	return out
}

// Discovered returns the machines that phoned home unmatched.
func (s *PhoneHomeServer) Discovered() []Discovery {
	var out []Discovery
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDiscovered).ForEach(func(_, v []byte) error {
			var d Discovery
			if json.Unmarshal(v, &d) == nil {
				out = append(out, d)
			}
			return nil
		})
	})
	return out
}

// WaitPhase waits until node reports phase (or a later one) in its current
// attempt of this server's run (ServerConfig.RunID): an attempt enrolled in
// another run counts as nothing yet. It returns at once with ErrNodeFailed
// (and the node's reason) when the node reports failed.
func (s *PhoneHomeServer) WaitPhase(ctx context.Context, node string, phase bootstrap.Phase) (bootstrap.PhaseEvent, error) {
	if _, ok := s.specs[node]; !ok {
		return bootstrap.PhaseEvent{}, fmt.Errorf("%w: no node %q", bootstrap.ErrUnknownMachine, node)
	}
	for {
		s.mu.Lock()
		ns := s.state[node]
		changed := s.changed
		var cur bootstrap.PhaseEvent
		var has bool
		if ns != nil && ns.Run == s.cfg.RunID {
			cur, has = ns.current()
		}
		s.mu.Unlock()
		if has && cur.Phase == bootstrap.PhaseFailed {
			return cur, fmt.Errorf("%w: %s: %s", bootstrap.ErrNodeFailed, node, cur.Reason)
		}
		if has && cur.Phase.Rank() >= phase.Rank() {
			for _, ev := range ns.Phases {
				if ev.Attempt == ns.Attempt && ev.Phase == phase {
					return ev, nil
				}
			}
			return cur, nil
		}
		select {
		case <-ctx.Done():
			at := "nothing yet"
			if has {
				at = string(cur.Phase)
			}
			return bootstrap.PhaseEvent{}, fmt.Errorf("waiting for %s to reach %s (at %s): %w", node, phase, at, ctx.Err())
		case <-changed:
		}
	}
}

func (s *PhoneHomeServer) handleAdminNodes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Nodes())
}

func (s *PhoneHomeServer) handleAdminDiscovered(w http.ResponseWriter, _ *http.Request) {
	d := s.Discovered()
	if d == nil {
		d = []Discovery{}
	}
	writeJSON(w, http.StatusOK, d)
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}
