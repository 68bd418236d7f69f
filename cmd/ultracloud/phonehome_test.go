package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud/bootstrap"
)

func TestPhoneHomeServe(t *testing.T) {
	dir := t.TempDir()
	topo, err := run(t, "topology", "baremetal-iso", "--json")
	if err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(dir, "t.json")
	os.WriteFile(tp, []byte(topo), 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"phone-home", "serve", "--topology", tp, "--state", filepath.Join(dir, "state"), "--listen", addr,
		"--plan", "baremetal-qemu-worker=" + samplePlan, "--system-id", "sys-9"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	c := bootstrap.NewClient("http://"+addr, bootstrap.WithRetries(20, 100*time.Millisecond))
	e, err := c.PhoneHome(ctx, bootstrap.Identity{MACs: []string{"52:54:00:03:02:00"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Node != "baremetal-qemu-worker" || e.SystemID != "sys-9" || len(e.Plan) == 0 {
		t.Fatalf("%+v", e)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "serving 2 nodes") {
		t.Fatal(out.String())
	}
	if _, err := run(t, "phone-home", "serve", "--topology", tp, "--plan", "nosuch=x.json"); err == nil || !strings.Contains(err.Error(), "NODE=PATH") {
		t.Fatalf("bad --plan: %v", err)
	}
}
