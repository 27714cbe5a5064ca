// Command benchchart draws SVG bar charts from `go test -bench` output, so
// the charts in docs/ come from measurements, not from hand.
//
//	go test -run '^$' -bench . ./local/e2e/ > bench.txt
//	cd tools && go run ./benchchart -in ../bench.txt -metric sec/op \
//	    -match 'Authenticate/' -title 'authn per request' -out ../docs/img/authn.svg
//
// For each benchmark matching -match it takes the median of the -metric
// column over every run (-count N) and draws one bar, labelled with the
// benchmark name (without the Benchmark prefix and the -GOMAXPROCS suffix)
// and the value in a readable unit.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	in := flag.String("in", "-", "benchmark output (- for stdin)")
	out := flag.String("out", "-", "SVG file to write (- for stdout)")
	metric := flag.String("metric", "sec/op", "metric column: sec/op (from ns/op), B/op, allocs/op or a custom unit such as p99-µs")
	match := flag.String("match", ".", "regular expression selecting benchmarks")
	title := flag.String("title", "", "chart title")
	flag.Parse()

	re, err := regexp.Compile(*match)
	if err != nil {
		log.Fatalf("benchchart: -match: %v", err)
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			log.Fatalf("benchchart: %v", err)
		}
		defer f.Close()
		r = f
	}
	names, values, err := parse(r, re, *metric)
	if err != nil {
		log.Fatalf("benchchart: %v", err)
	}
	if len(names) == 0 {
		log.Fatalf("benchchart: no benchmark matches %q with a %s column", *match, *metric)
	}
	svg := draw(*title, *metric, names, values)
	if *out == "-" {
		fmt.Print(svg)
		return
	}
	if err := os.WriteFile(*out, []byte(svg), 0o644); err != nil {
		log.Fatalf("benchchart: %v", err)
	}
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse returns the benchmarks in order of first appearance and the median
// of the metric over their runs.
func parse(r io.Reader, re *regexp.Regexp, metric string) ([]string, []float64, error) {
	runs := map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		if !re.MatchString(name) {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if unit == "ns/op" && metric == "sec/op" {
				v, unit = v/1e9, "sec/op"
			}
			if unit != metric {
				continue
			}
			if _, ok := runs[name]; !ok {
				order = append(order, name)
			}
			runs[name] = append(runs[name], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	values := make([]float64, len(order))
	for i, n := range order {
		vs := runs[n]
		slices.Sort(vs)
		values[i] = vs[len(vs)/2]
	}
	return order, values, nil
}

// human formats v of unit for a label.
func human(v float64, unit string) string {
	if unit == "sec/op" {
		switch {
		case v < 1e-6:
			return fmt.Sprintf("%.0f ns", v*1e9)
		case v < 1e-3:
			return fmt.Sprintf("%.1f µs", v*1e6)
		case v < 1:
			return fmt.Sprintf("%.1f ms", v*1e3)
		}
		return fmt.Sprintf("%.2f s", v)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

// draw renders horizontal bars on a linear scale from zero.
func draw(title, unit string, names []string, values []float64) string {
	const (
		barH, gap, top, right, span0 = 22, 10, 40, 130, 370
	)
	// The labels' column fits the longest name (≈ 7 px a character at 13 px).
	labelW := 260
	for _, n := range names {
		labelW = max(labelW, 7*len(n)+20)
	}
	width := labelW + span0 + right
	height := top + len(names)*(barH+gap) + 20
	maxV := slices.Max(values)
	if maxV <= 0 {
		maxV = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	span := float64(width - labelW - right)
	for i, n := range names {
		y := top + i*(barH+gap)
		w := values[i] / maxV * span
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+barH-6, html.EscapeString(n))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#3b6ea8"/>`+"\n", labelW, y, max(w, 1), barH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelW)+max(w, 1)+6, y+barH-6, html.EscapeString(human(values[i], unit)))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
