package doubles

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RunFlareDB serves flaredb's key/value API on addr until ctx ends, its
// state in chainfire: PUT /v1/kv/{key} stores the body, GET /v1/kv/{key}
// reads it back linearizably (404 when absent), GET /health answers 200
// when chainfire accepts a linearizable read.
func RunFlareDB(ctx context.Context, addr string, cli *clientv3.Client, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("flaredb", cli))
	mux.HandleFunc("PUT /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := cli.Put(r.Context(), PrefixFlareDB+r.PathValue("key"), string(body))
		if err != nil {
			http.Error(w, "flaredb: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%d\n", resp.Header.Revision)
	})
	mux.HandleFunc("GET /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := cli.Get(r.Context(), PrefixFlareDB+r.PathValue("key"))
		if err != nil {
			http.Error(w, "flaredb: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(resp.Kvs) == 0 {
			http.Error(w, "flaredb: no such key", http.StatusNotFound)
			return
		}
		w.Write(resp.Kvs[0].Value)
	})
	return run(ctx, addr, mux, log)
}

// Token is what iam stores per token (by its SHA-256, never the token).
type Token struct {
	Subject string    `json:"subject"`
	Issued  time.Time `json:"issued"`
	Issuer  string    `json:"issuer"`
}

// RunIAM serves iam's token API on addr until ctx ends: POST
// /v1/tokens?subject=S issues a bearer token (valid one hour) and answers
// {"token": …}; GET /v1/whoami with "Authorization: Bearer TOKEN" answers
// the Token, or 401. Tokens live in chainfire, so one issued through any
// node validates on every other.
func RunIAM(ctx context.Context, addr, node string, cli *clientv3.Client, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("iam", cli))
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		subject := r.URL.Query().Get("subject")
		if subject == "" {
			http.Error(w, "iam: subject= is required", http.StatusBadRequest)
			return
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		tok := hex.EncodeToString(raw)
		lease, err := cli.Grant(r.Context(), 3600)
		if err != nil {
			http.Error(w, "iam: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		rec, _ := json.Marshal(Token{Subject: subject, Issued: time.Now().UTC(), Issuer: node})
		if _, err := cli.Put(r.Context(), PrefixIAMTokens+tokenID(tok), string(rec), clientv3.WithLease(lease.ID)); err != nil {
			http.Error(w, "iam: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": tok})
	})
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			http.Error(w, "iam: want Authorization: Bearer TOKEN", http.StatusUnauthorized)
			return
		}
		resp, err := cli.Get(r.Context(), PrefixIAMTokens+tokenID(tok))
		if err != nil {
			http.Error(w, "iam: chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(resp.Kvs) == 0 {
			http.Error(w, "iam: unknown or expired token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(resp.Kvs[0].Value)
	})
	return run(ctx, addr, mux, log)
}

func tokenID(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// health answers 200 when chainfire serves a linearizable read in 3 s.
func health(name string, cli *clientv3.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if _, err := cli.Get(ctx, "/ultracloud/health"); err != nil {
			http.Error(w, name+": chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %s\n", name)
	}
}

// run serves h on addr until ctx ends.
func run(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	stop, err := serve(addr, h, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	return nil
}

// deleteKey is a DELETE handler removing prefix+{name} from chainfire:
// 204, or 404 naming what (a double's resource) when there is none.
func deleteKey(cli *clientv3.Client, prefix, double, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := cli.Delete(r.Context(), prefix+r.PathValue("name"))
		if err != nil {
			http.Error(w, double+": chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if resp.Deleted == 0 {
			http.Error(w, double+": no "+what+" "+r.PathValue("name"), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// listAndGet registers GET path (every resource list returns, as JSON)
// and GET path/{name} (the one of that name, or 404 naming what) on mux.
func listAndGet[T any](mux *http.ServeMux, path string, cli *clientv3.Client, list func(context.Context, *clientv3.Client) ([]T, error), name func(T) string, double, what string) {
	read := func(w http.ResponseWriter, r *http.Request) ([]T, bool) {
		items, err := list(r.Context(), cli)
		if err != nil {
			http.Error(w, double+": chainfire: "+err.Error(), http.StatusServiceUnavailable)
			return nil, false
		}
		return items, true
	}
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		if items, ok := read(w, r); ok {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(items)
		}
	})
	mux.HandleFunc("GET "+path+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		items, ok := read(w, r)
		if !ok {
			return
		}
		for _, it := range items {
			if name(it) == r.PathValue("name") {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(it)
				return
			}
		}
		http.Error(w, double+": no "+what+" "+r.PathValue("name"), http.StatusNotFound)
	})
}
