package lanes_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
	"github.com/photoncloud/testkit/ultracloud/checks"
	"github.com/photoncloud/testkit/ultracloud/lanes"
)

// A lane is a function on the scaffold: it records steps (here a service
// started on the host and a check that waits for it), and Execute writes
// report.json, junit.xml and timeline.svg once, at the end. A VM lane adds
// r.Boot(ctx, node) and checks on the machine (checks.UnitActive, …).
func ExampleExecute() {
	work, _ := os.MkdirTemp("", "example-lane-")
	defer os.RemoveAll(work)
	cfg := ultracloud.RunConfig{WorkDir: work, Host: ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG}}

	report, err := lanes.Execute(context.Background(), cfg, lanes.Spec{Name: "hello-lane"},
		func(ctx context.Context, r *lanes.Run) error {
			var url string
			err := r.Step(ctx, "", "start-service", func(context.Context) error {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok hello") }))
				r.Defer(srv.Close)
				url = srv.URL
				return nil
			})
			if err != nil {
				return err
			}
			return r.Wait(ctx, "", "service-ready", checks.HTTP{URL: url, BodyContains: "ok hello"}, r.Scaled(10*time.Second))
		})
	if err != nil {
		fmt.Println("could not run:", err)
		return
	}
	fmt.Println(report.Status, report.Counts())
	for _, s := range report.Steps {
		fmt.Println(s.Name, s.Status)
	}
	for _, f := range []string{"report.json", "junit.xml", "timeline.svg"} {
		_, err := os.Stat(filepath.Join(work, "report", f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// pass 2 passed, 0 failed, 0 skipped
	// start-service pass
	// service-ready pass
	// report.json true
	// junit.xml true
	// timeline.svg true
}
