package lanes

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

func TestTimelineSVG(t *testing.T) {
	r := ultracloud.NewReport("baremetal-iso", ultracloud.HostEnv{Accelerator: ultracloud.AccelTCG})
	t0 := r.Started
	r.AddStep(ultracloud.Step{Name: "prepare-media", Started: t0, Finished: t0.Add(time.Second), Status: ultracloud.StatusPass})
	r.AddStep(ultracloud.Step{Name: "phone-home", Node: "n<1>", Started: t0.Add(time.Second), Finished: t0.Add(3 * time.Second), Status: ultracloud.StatusPass})
	r.AddStep(ultracloud.Step{Name: "installed", Node: "n<1>", Started: t0.Add(3 * time.Second), Finished: t0.Add(4 * time.Second), Status: ultracloud.StatusFail, Reason: "x"})
	r.Finish(nil)
	svg := TimelineSVG(r)
	if err := xml.Unmarshal([]byte(svg), new(struct{ XMLName xml.Name })); err != nil {
		t.Fatalf("not XML: %v\n%s", err, svg)
	}
	for _, want := range []string{"(lane setup)", "n&lt;1&gt;", `stroke="#d50000"`, "fail"} {
		if !strings.Contains(svg, want) {
			t.Errorf("missing %q", want)
		}
	}
}
