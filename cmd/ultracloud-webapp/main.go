// Command ultracloud-webapp is the demo tenant application of
// fresh-demo-vm-webapp: a guestbook that runs inside a plasmavmc VM and
// keeps its entries in lightningstor (S3), so they outlive the VM and the
// worker it ran on. It serves an HTML page with a form (GET /, POST
// /entries) and a JSON API (GET and POST /api/entries, GET /health).
//
//	ultracloud-webapp --listen :80 --s3 http://169.254.169.254:7480 --bucket guestbook
//
// With --memory it keeps its entries in memory only: a broken app the
// lane's persistence check must catch.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/photoncloud/testkit/internal/s3client"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("ultracloud-webapp", flag.ContinueOnError)
	listen := fs.String("listen", ":80", "address to serve on")
	endpoint := fs.String("s3", "http://169.254.169.254:7480", "lightningstor's S3 endpoint")
	bucket := fs.String("bucket", "guestbook", "bucket holding the entries")
	memory := fs.Bool("memory", false, "keep entries in memory only (they are lost with the VM)")
	data := fs.String("data", "", "keep entries as files in this directory (a volume) instead of lightningstor")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *memory && *data != "" {
		fmt.Fprintln(os.Stderr, "ultracloud-webapp: --memory and --data are exclusive: choose where the entries live")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var st store = &memStore{}
	storage := "memory (lost with the VM)"
	switch {
	case *data != "":
		if fi, err := os.Stat(*data); err != nil || !fi.IsDir() {
			log.Error("--data wants an existing directory (the volume's mount point)", "dir", *data, "err", err)
			return 1
		}
		st, storage = &dirStore{dir: *data}, "directory "+*data
	case !*memory:
		// A request has 20 s (lightningstor's own chainfire calls have 10 s
		// each) and 3 attempts.
		s3 := &s3Store{c: &s3client.Client{Endpoint: *endpoint, Bucket: *bucket, HTTP: &http.Client{Timeout: 20 * time.Second}, Attempts: 3}}
		// lightningstor may still be coming up: retry the bucket for a while.
		var err error
		for i := 0; i < 60; i++ {
			if err = s3.ensureBucket(ctx); err == nil || ctx.Err() != nil {
				break
			}
			if i%10 == 0 {
				log.Warn("bucket not ready, retrying", "endpoint", *endpoint, "bucket", *bucket, "err", err)
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			log.Error("bucket", "endpoint", *endpoint, "bucket", *bucket, "err", err)
			return 1
		}
		st, storage = s3, *endpoint+"/"+*bucket
	}
	host, _ := os.Hostname()
	app := &app{store: st, host: host, storage: storage}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	srv := &http.Server{Handler: app.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("guestbook serving", "addr", ln.Addr().String(), "storage", app.storage)
	fmt.Printf("ultracloud-webapp: serving on %s, entries in %s\n", ln.Addr(), app.storage)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}
