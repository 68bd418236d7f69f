package lanes

import (
	"cmp"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"github.com/photoncloud/testkit/ultracloud"
)

// phaseColors gives each step a stable colour in timelines.
var phaseColors = map[string]string{
	"boot": "#9e9e9e", "phone-home": "#8d6e63", "plan-fetched": "#5c6bc0", "bundle-fetched": "#42a5f5",
	"disk-applied": "#26a69a", "installed": "#66bb6a", "rebooting": "#d4e157", "reboot": "#ffca28",
	"first-boot": "#ffa726", "active": "#ef5350", "verify-disk": "#ab47bc",
	"prepare-media": "#b0bec5", "pack-bundle": "#90a4ae",
}

// TimelineSVG draws a report's node steps: one row per node, one bar per
// step, failed steps outlined in red.
func TimelineSVG(r *ultracloud.Report) string {
	var nodes []string
	var steps []ultracloud.Step
	const laneRow = "(lane setup)"
	for _, s := range r.Steps {
		if s.Node == "" {
			s.Node = laneRow // media, bundles: what runs before the machines
		}
		steps = append(steps, s)
		if !slices.Contains(nodes, s.Node) {
			nodes = append(nodes, s.Node)
		}
	}
	for _, e := range r.Events {
		if n := cmp.Or(e.Node, laneRow); !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	const left, rowH, width, top = 230, 34, 1100, 40
	t0, t1 := r.Started, r.Finished
	if t1.IsZero() || !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	scale := float64(width-left-20) / t1.Sub(t0).Seconds()
	height := top + rowH*len(nodes) + 60
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s — %s, %s (%s)</text>`+"\n",
		html.EscapeString(r.Lane), r.Status, t1.Sub(t0).Round(time.Second), html.EscapeString(string(r.Host.Accelerator)))
	for i, n := range nodes {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`+"\n", y+rowH/2+4, html.EscapeString(n))
		for _, s := range steps {
			if s.Node != n {
				continue
			}
			x := left + int(s.Started.Sub(t0).Seconds()*scale)
			w := max(2, int(s.Duration().Seconds()*scale))
			stroke := ""
			if s.Status == ultracloud.StatusFail {
				stroke = ` stroke="#d50000" stroke-width="3"`
			}
			color := phaseColors[s.Name]
			if color == "" {
				color = "#78909c"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"%s><title>%s %s: %s (%s)</title></rect>`+"\n",
				x, y+4, w, rowH-8, color, stroke, html.EscapeString(n), html.EscapeString(s.Name), s.Duration().Round(time.Millisecond), s.Status)
		}
	}
	// Events: a marker and its name at their time on their node's row.
	for _, e := range r.Events {
		row := slices.Index(nodes, cmp.Or(e.Node, laneRow))
		x := left + int(e.At.Sub(t0).Seconds()*scale)
		y := top + row*rowH
		fmt.Fprintf(&b, `<path d="M%d %d l5 8 l-10 0 z" fill="#d50000"><title>%s %s: %s at %s</title></path>`+"\n",
			x, y+1, html.EscapeString(e.Node), html.EscapeString(e.Name), html.EscapeString(e.Detail), e.At.Sub(t0).Round(time.Millisecond))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#d50000">%s</text>`+"\n", x+6, y+10, html.EscapeString(e.Name))
	}
	// Legend and axis.
	ly := top + rowH*len(nodes) + 20
	x := 10
	for _, name := range []string{"phone-home", "plan-fetched", "bundle-fetched", "disk-applied", "installed", "rebooting", "reboot", "first-boot", "active", "verify-disk"} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, ly, phaseColors[name], x+14, ly+10, name)
		x += 14 + 7*len(name) + 12
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">0s … %s</text>`+"\n", left, ly+30, t1.Sub(t0).Round(time.Second))
	b.WriteString("</svg>\n")
	return b.String()
}
