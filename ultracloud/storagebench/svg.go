package storagebench

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// WriteSVG draws the report's metrics as horizontal bars, one row each,
// scaled within each unit (MB/s, IOPS, ms), with a baseline's values as
// ticks when base is not nil.
func (r Report) WriteSVG(w io.Writer, base *Report) error {
	ms := r.Metrics()
	was := map[string]float64{}
	if base != nil {
		for _, m := range base.Metrics() {
			was[m.Name] = m.Value
		}
	}
	top := map[string]float64{}
	for _, m := range ms {
		top[m.Unit] = max(top[m.Unit], m.Value, was[m.Name])
	}
	const row, left, width = 22, 260, 420
	h := 40 + row*len(ms)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+width+120, h)
	fmt.Fprintf(&b, `<text x="8" y="18" font-size="14">bench-storage %s (%s)</text>`+"\n", html.EscapeString(r.RunID), html.EscapeString(r.Accelerator))
	for i, m := range ms {
		y := 30 + i*row
		wdt := 0.0
		if top[m.Unit] > 0 {
			wdt = m.Value / top[m.Unit] * width
		}
		color := "#4a7bd0"
		if m.Lower {
			color = "#d08a4a"
		}
		fmt.Fprintf(&b, `<text x="8" y="%d">%s</text>`, y+14, html.EscapeString(m.Name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>`, left, y+2, wdt, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.4g %s</text>`, float64(left)+wdt+6, y+14, m.Value, m.Unit)
		if v, ok := was[m.Name]; ok && top[m.Unit] > 0 {
			x := float64(left) + v/top[m.Unit]*width
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black" stroke-width="2"><title>baseline %.4g %s</title></line>`, x, x, y, y+20, v, m.Unit)
		}
		b.WriteString("\n")
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
