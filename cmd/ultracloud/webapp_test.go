package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/photoncloud/testkit/internal/testenv"
	"github.com/photoncloud/testkit/ultracloud"
)

// demoWebapp runs fresh-demo-vm-webapp's verbs on the running cluster of
// state: demo-vm-webapp passes and names the killed and the new worker;
// serve-vm-webapp serves the page to curl and to a real headless
// Chromium (an entry signed through the form is on the page after a
// reload; the screenshot is kept); Ctrl-C ends the forward and the
// process; the webapp told to keep its entries in memory makes the lane
// fail naming the lost entries.
func demoWebapp(t *testing.T, state string) {
	work := t.TempDir()
	begin := time.Now()
	out, errOut, code := cli(t, "cluster", "demo-vm-webapp", "--state", state, "--work-dir", work)
	t.Logf("demo-vm-webapp in %v:\n%s\n%s", time.Since(begin).Round(time.Second), out, errOut)
	if code != 0 || !strings.Contains(out, "lane fresh-demo-vm-webapp: pass") {
		t.Fatalf("demo-vm-webapp: exit %d", code)
	}
	var r ultracloud.Report
	raw, _ := os.ReadFile(filepath.Join(work, "report", "report.json"))
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	moved := ""
	for _, e := range r.Events {
		if e.Name == "vm moved" {
			moved = e.Detail
		}
	}
	if m := regexp.MustCompile(`killed worker (node0\d); VM webapp now on (node0\d)`).FindStringSubmatch(moved); m == nil || m[1] == m[2] {
		t.Fatalf("the report does not name the killed worker and the new one: %q", moved)
	}
	for _, s := range r.Steps {
		t.Logf("step %-32s %-6s %6.1fs", s.Name, s.Status, s.Finished.Sub(s.Started).Seconds())
	}

	t.Run("serve-vm-webapp", func(t *testing.T) { serveWebapp(t, state) })

	out, errOut, code = cli(t, "cluster", "demo-vm-webapp", "--state", state, "--work-dir", t.TempDir(), "--in-memory", "--entries", "2")
	if code != 1 || !strings.Contains(out, "persistence") || !strings.Contains(out, "2 of 2 entries lost") {
		t.Fatalf("in-memory webapp: exit %d, want 1 naming the lost entries:\n%s\n%s", code, out, errOut)
	}
	t.Logf("in-memory webapp fails as it must: %s", firstLine(out[strings.Index(out, "reason:"):]))
}

// serveWebapp runs serve-vm-webapp as a process until SIGINT.
func serveWebapp(t *testing.T, state string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "cluster", "serve-vm-webapp", "--state", state, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	url := ""
	for url == "" && lines.Scan() {
		t.Log(lines.Text())
		if m := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatal("serve-vm-webapp printed no URL")
	}
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stdout); rest <- string(b) }()

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "UltraCloud guestbook") {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, page)
	}
	browse(t, url)

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve-vm-webapp after Ctrl-C: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve-vm-webapp still runs 15 s after Ctrl-C")
	}
	if s := <-rest; !strings.Contains(s, "stopped") {
		t.Fatalf("no goodbye: %q", s)
	}
	if !testenv.ProcessGone(cmd.Process.Pid) {
		t.Fatal("serve-vm-webapp's process is still there")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"), time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Ctrl-C", url)
	}
}

// browse signs the guestbook in headless Chromium through the form,
// reloads, keeps a screenshot and checks the entry is on the page.
func browse(t *testing.T, url string) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium (make deps installs Debian's): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 700))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The browser lives as long as bctx: start it with no bound, then
	// bound each step on a context derived from it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("chromium: start: %v", err)
	}
	msg := "signed in Chromium at " + time.Now().UTC().Format(time.RFC3339Nano)
	// Each step has its own bound (the page goes through the host's
	// forward, an SSH channel, prismnet and lightningstor on a loaded TCG
	// cluster); a failed step says where the browser was and what it saw.
	step := func(what string, bound time.Duration, a ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(bctx, bound)
		defer cancel()
		err := chromedp.Do(ctx, a...)
		t.Logf("chromium: %s: %.1fs", what, time.Since(start).Seconds())
		if err != nil {
			dctx, cancel := context.WithTimeout(bctx, 10*time.Second)
			defer cancel()
			loc, _ := chromedp.Run(dctx, chromedp.Location())
			body, _ := chromedp.Run(dctx, chromedp.Text("body"))
			t.Fatalf("chromium: %s (bound %s): %v; at %q the page says %q", what, bound, err, loc, body)
		}
	}
	step("open the page", time.Minute, chromedp.Navigate(url), chromedp.WaitVisible("#sign"))
	step("fill in the form", 30*time.Second, chromedp.SendKeys("#name", "browser test"), chromedp.SendKeys("#message", msg))
	step("submit", 30*time.Second, chromedp.Click("#sign"))
	// The form posts, the app redirects to the page: wait for the entry.
	var text string
	start := time.Now()
	for deadline := start.Add(time.Minute); !strings.Contains(text, msg) && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(bctx, 5*time.Second)
		text, _ = chromedp.Run(ctx, chromedp.Text("#entries"))
		cancel()
	}
	t.Logf("chromium: the entry is on the page after the post: %v (%.1fs)", strings.Contains(text, msg), time.Since(start).Seconds())
	step("reload", time.Minute, chromedp.Reload(), chromedp.WaitVisible("#entries"))
	ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	text, err = chromedp.Run(ctx, chromedp.Text("#entries"))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dir := testenv.ArtifactDir(t)
	path := filepath.Join(dir, "serve-vm-webapp.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%d KiB): %s", len(shot)>>10, path)
	if !strings.Contains(text, msg) {
		t.Fatalf("the entry is not on the page after a reload; entries: %q", text)
	}
}
