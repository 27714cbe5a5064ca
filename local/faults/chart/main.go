// Command chart draws the history of a fault-injection run
// (local/faults/history) as an SVG: time across, one lane per operation
// kind, faults shaded over the lanes, heals marked.
//
//	go run ./local/faults/chart -in history.jsonl -out run.svg
//
// Each lane has three rows, one per result: ok (green), fail (amber) and
// unknown (red). Time is cut into bins two pixels wide, and each bin of a
// row is a bar as tall as the operations invoked in it, relative to the
// row's busiest bin: the ok row shows throughput, the others when
// failures happened. The row's total is written at its right. So the
// picture stays the same size however long the run was. Above the lanes,
// restarts (triangles) and convergence (diamonds) are marked on the
// events row; each fault is a band from its start to its end (or to the
// end of the history if it never ended), coloured and labelled by kind;
// each heal is a dashed blue line. Marks carry a tooltip (SVG title) with
// their details.
package main

import (
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "chart:", err)
		}
		os.Exit(2)
	}
}

// run is the program: it reads the history named by -in (or stdin) and
// writes the SVG to -out (or stdout).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "history to draw (JSON lines), - for stdin")
	out := fs.String("out", "-", "SVG file to write, - for stdout")
	title := fs.String("title", "", "chart title (default: the history's name and size)")
	width := fs.Int("width", 1000, "width of the picture in pixels (at least 400)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("usage: chart -in history.jsonl [-out run.svg] [-title text] [-width px]")
	}
	if *width < 400 {
		return fmt.Errorf("-width %d: at least 400", *width)
	}
	var r io.Reader = stdin
	name := "stdin"
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, filepath.Base(*in)
	}
	h, err := history.Read(r)
	if err != nil {
		return err
	}
	if *title == "" {
		*title = defaultTitle(name, h)
	}
	svg, err := draw(h, *title, *width)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = io.WriteString(stdout, svg)
		return err
	}
	return os.WriteFile(*out, []byte(svg), 0o644)
}

func defaultTitle(name string, h *history.History) string {
	faults := 0
	for _, e := range h.Events {
		if e.Kind == history.EventFaultStart {
			faults++
		}
	}
	t := fmt.Sprintf("%s: %d operations, %d faults", name, len(h.Ops), faults)
	if h.Truncated {
		t += " (truncated)"
	}
	return t
}

// Layout, in pixels.
const (
	left      = 80 // lane labels
	right     = 110
	top       = 56 // title and legend
	labelRowH = 13 // fault labels above the lanes
	labelRows = 3
	eventsH   = 16 // the events row
	rowH      = 12 // one result row
	laneGap   = 10
	axisH     = 30
	binW      = 2
)

// Colours.
var (
	resultColour = map[string]string{
		history.ResultOK:      "#2a9d4a",
		history.ResultFail:    "#e08a00",
		history.ResultUnknown: "#c62828",
	}
	faultColour = map[string]string{
		history.FaultKill:      "#7b1fa2",
		history.FaultPause:     "#1976d2",
		history.FaultPartition: "#f2b600",
		history.FaultPowerLoss: "#6d4c41",
		history.FaultCorrupt:   "#d81b60",
	}
)

const otherFaultColour = "#757575"

const healColour = "#1f5fbf"

// band is one fault from start to end.
type band struct {
	fault      string
	nodes      []string
	detail     string
	start, end time.Time
	open       bool // never ended
}

// bands pairs fault-start and fault-end events: an end closes the oldest
// open start of the same fault on the same nodes.
func bands(events []history.Event, last time.Time) []band {
	var out []band
	for _, e := range events {
		switch e.Kind {
		case history.EventFaultStart:
			out = append(out, band{fault: e.Fault, nodes: e.Nodes, detail: e.Detail, start: e.Time, open: true})
		case history.EventFaultEnd:
			for i := range out {
				if out[i].open && out[i].fault == e.Fault && sameNodes(out[i].nodes, e.Nodes) {
					out[i].end, out[i].open = e.Time, false
					break
				}
			}
		}
	}
	for i := range out {
		if out[i].open {
			out[i].end = last
		}
	}
	slices.SortStableFunc(out, func(a, b band) int { return a.start.Compare(b.start) })
	return out
}

func sameNodes(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// span returns the first and last moments of the history.
func span(h *history.History) (first, last time.Time, ok bool) {
	see := func(t time.Time) {
		if !ok || t.Before(first) {
			first = t
		}
		if !ok || t.After(last) {
			last = t
		}
		ok = true
	}
	for _, op := range h.Ops {
		see(op.Invoke)
		see(op.Complete)
	}
	for _, e := range h.Events {
		see(e.Time)
	}
	return first, last, ok
}

// draw renders h.
func draw(h *history.History, title string, width int) (string, error) {
	first, last, ok := span(h)
	if !ok {
		return "", errors.New("nothing to draw: the history has no operations or events")
	}
	total := last.Sub(first)
	if total <= 0 {
		total = time.Second
	}
	plotW := width - left - right
	x := func(t time.Time) float64 {
		return left + float64(plotW)*float64(t.Sub(first))/float64(total)
	}
	var kinds []string
	for _, k := range history.Kinds {
		if slices.ContainsFunc(h.Ops, func(op history.Op) bool { return op.Kind == k }) {
			kinds = append(kinds, k)
		}
	}
	laneH := len(history.Results) * rowH
	eventsY := top + labelRows*labelRowH
	lanesY := eventsY + eventsH + laneGap
	plotBottom := lanesY + len(kinds)*(laneH+laneGap) - laneGap
	height := plotBottom + axisH

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>`)
	p(`<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`, esc(title))
	legend(&b, h)

	// Fault bands behind everything, labels above the lanes.
	ends := make([]float64, labelRows) // right end of the last label in each row
	for i := range ends {
		ends[i] = math.Inf(-1)
	}
	for _, f := range bands(h.Events, last) {
		x0, x1 := x(f.start), x(f.end)
		colour := faultColour[f.fault]
		if colour == "" {
			colour = otherFaultColour
		}
		tip := fmt.Sprintf("%s on %s: %s to %s", f.fault, nodeList(f.nodes), offset(f.start.Sub(first)), offset(f.end.Sub(first)))
		if f.open {
			tip += " (never ended)"
		}
		if f.detail != "" {
			tip += "; " + f.detail
		}
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.16"><title>%s</title></rect>`,
			x0, eventsY, max(x1-x0, 1), plotBottom-eventsY, colour, esc(tip))
		// The label goes in the first row with room for it; when none has
		// (a dense run), the band keeps its mark and its tooltip only.
		label := f.fault + " " + nodeList(f.nodes)
		row := -1
		for i := range ends {
			if ends[i] < x0 {
				row = i
				break
			}
		}
		if row < 0 {
			p(`<rect x="%.1f" y="%d" width="3" height="%d" fill="%s"/>`, x0, eventsY-6, 6, colour)
			continue
		}
		ends[row] = x0 + float64(7*len(label))
		ly := top + row*labelRowH + labelRowH - 3
		p(`<rect x="%.1f" y="%d" width="3" height="%d" fill="%s"/>`, x0, ly-9, eventsY-(ly-9), colour)
		p(`<text x="%.1f" y="%d" font-size="11" fill="%s">%s</text>`, x0+5, ly, colour, esc(label))
	}

	// Events row: restarts and convergence.
	p(`<text x="%d" y="%d" text-anchor="end">events</text>`, left-8, eventsY+eventsH-4)
	for _, e := range h.Events {
		cx := x(e.Time)
		cy := float64(eventsY) + eventsH/2
		tip := esc(fmt.Sprintf("%s %s at %s %s", e.Kind, nodeList(e.Nodes), offset(e.Time.Sub(first)), e.Detail))
		switch e.Kind {
		case history.EventRestart:
			p(`<path d="M%.1f %.1f l-4 7 h8 z" fill="#444"><title>%s</title></path>`, cx, cy-4, tip)
		case history.EventConverged:
			p(`<path d="M%.1f %.1f l4 4 l-4 4 l-4 -4 z" fill="%s"><title>%s</title></path>`, cx, cy-4, resultColour[history.ResultOK], tip)
		}
	}

	// Lanes.
	bins := plotW / binW
	binOf := func(t time.Time) int {
		i := int(float64(bins) * float64(t.Sub(first)) / float64(total))
		return min(max(i, 0), bins-1)
	}
	for li, k := range kinds {
		y0 := lanesY + li*(laneH+laneGap)
		p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#ccc"/>`, left, y0, plotW, laneH)
		p(`<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>`, left-8, y0+laneH/2+4, esc(k))
		for ri, res := range history.Results {
			counts := make([]int, bins)
			n := 0
			for _, op := range h.Ops {
				if op.Kind == k && op.Result == res {
					counts[binOf(op.Invoke)]++
					n++
				}
			}
			rowBottom := y0 + (ri+1)*rowH
			peak := slices.Max(counts)
			for i, c := range counts {
				if c == 0 {
					continue
				}
				bh := max(float64(rowH-2)*float64(c)/float64(peak), 1.5)
				p(`<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`, left+i*binW, float64(rowBottom)-bh, binW, bh, resultColour[res])
			}
			p(`<text x="%d" y="%d" font-size="10" fill="#555">%s %d</text>`, left+plotW+6, rowBottom-2, res, n)
		}
	}

	// Heals over the lanes.
	for _, e := range h.Events {
		if e.Kind == history.EventHeal {
			hx := x(e.Time)
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"><title>heal at %s</title></line>`,
				hx, eventsY, hx, plotBottom, healColour, offset(e.Time.Sub(first)))
		}
	}

	// Time axis.
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, left, plotBottom+4, left+plotW, plotBottom+4)
	step := tickStep(total)
	for t := time.Duration(0); t <= total; t += step {
		tx := x(first.Add(t))
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`, tx, plotBottom+4, tx, plotBottom+8)
		p(`<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%s</text>`, tx, plotBottom+21, offset(t))
	}
	b.WriteString("</svg>\n")
	return b.String(), nil
}

// legend writes the colour keys under the title: results, then the fault
// kinds the history has, then heals.
func legend(b *strings.Builder, h *history.History) {
	x := 10
	y := 42
	key := func(colour, label string, opacity float64) {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s" fill-opacity="%.2f"/>`+"\n", x, y-9, colour, opacity)
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11">%s</text>`+"\n", x+14, y, esc(label))
		x += 14 + 7*len(label) + 14
	}
	for _, r := range history.Results {
		key(resultColour[r], r, 1)
	}
	var kinds []string
	for _, e := range h.Events {
		if e.Kind == history.EventFaultStart && !slices.Contains(kinds, e.Fault) {
			kinds = append(kinds, e.Fault)
		}
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		c := faultColour[k]
		if c == "" {
			c = otherFaultColour
		}
		key(c, k, 0.4)
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"/>`+"\n", x, y-10, x, y+1, healColour)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11">heal</text>`+"\n", x+6, y)
}

// tickStep picks 1, 2 or 5 times a power of ten seconds (or minutes past
// two minutes) so that the axis has five to ten ticks.
func tickStep(total time.Duration) time.Duration {
	unit := time.Second
	if total > 2*time.Minute {
		unit = time.Minute
	}
	for _, base := range []float64{0.001, 0.01, 0.1, 1, 10, 100, 1000} {
		for _, m := range []float64{1, 2, 5} {
			step := time.Duration(base * m * float64(unit))
			if step > 0 && total/step <= 10 {
				return step
			}
		}
	}
	return total
}

// offset formats a time from the start of the run.
func offset(d time.Duration) string {
	if d >= 2*time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return fmt.Sprintf("%g s", d.Round(time.Millisecond).Seconds())
}

func nodeList(nodes []string) string {
	if len(nodes) == 0 {
		return "all"
	}
	return strings.Join(nodes, ",")
}

func esc(s string) string { return html.EscapeString(strings.TrimSpace(s)) }
