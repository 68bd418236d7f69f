package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// componentMain runs a fixture component: a test double named after an
// UltraCloud unit that serves GET /health with 200 "ok <name>". With --fail
// it exits 1 at once, as a broken service would.
func componentMain(args []string) int {
	fs := flag.NewFlagSet("component", flag.ContinueOnError)
	port := fs.Int("port", 0, "TCP port on 127.0.0.1")
	fail := fs.Bool("fail", false, "exit 1 immediately (a failing service)")
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ultracloud-guest component NAME --port N [--fail]")
		return 2
	}
	name := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	fmt.Printf("%s: fixture component (test double) starting on 127.0.0.1:%d\n", name, *port)
	if *fail {
		fmt.Printf("%s: configured to fail (ultracloud.fail)\n", name)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "ok %s\n", name)
	})
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Printf("%s: %v\n", name, err)
		return 1
	}
	fmt.Printf("%s: stopped\n", name)
	return 0
}
