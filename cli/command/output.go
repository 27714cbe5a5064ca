package command

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Output formats of list commands.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatCSV   = "csv"
)

func checkFormat(f string) error {
	switch f {
	case formatTable, formatJSON, formatYAML, formatCSV:
		return nil
	}
	return fmt.Errorf("Invalid format %q (table, json, yaml or csv)", f)
}

// renderList writes rows in the chosen format: an ASCII box table (as
// incus prints), CSV without a header, or the raw objects as JSON or YAML.
func renderList(w io.Writer, format string, header []string, rows [][]string, objects any) error {
	switch format {
	case formatJSON:
		return writeJSON(w, objects)
	case formatYAML:
		return writeYAML(w, objects)
	case formatCSV:
		cw := csv.NewWriter(w)
		if err := cw.WriteAll(rows); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	default:
		writeTable(w, header, rows)
		return nil
	}
}

// column is one column of a list: its header and how a row fills it.
type column[T any] struct {
	header string
	data   func(T) string
}

// parseColumns turns a -c value such as "ntf" or "n,t,f" into columns.
func parseColumns[T any](spec string, known map[rune]column[T]) ([]column[T], error) {
	var cols []column[T]
	for part := range strings.SplitSeq(spec, ",") {
		if part == "" {
			return nil, fmt.Errorf("Empty column entry (redundant, leading or trailing comma) in %q", spec)
		}
		for _, r := range part {
			c, ok := known[r]
			if !ok {
				return nil, fmt.Errorf("Unknown column shorthand char '%c' in %q", r, spec)
			}
			cols = append(cols, c)
		}
	}
	return cols, nil
}

// tabulate fills the cells of rows for cols and returns the header.
func tabulate[T any](cols []column[T], rows []T) ([]string, [][]string) {
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = c.header
	}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = make([]string, len(cols))
		for j, c := range cols {
			cells[i][j] = c.data(r)
		}
	}
	return header, cells
}

// writeTable draws an ASCII box table. A cell may hold several lines.
func writeTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			for l := range strings.SplitSeq(c, "\n") {
				widths[i] = max(widths[i], utf8.RuneCountInString(l))
			}
		}
	}
	var sep strings.Builder
	sep.WriteString("+")
	for _, wd := range widths {
		sep.WriteString(strings.Repeat("-", wd+2) + "+")
	}
	line := func(cells []string, center bool) {
		split := make([][]string, len(cells))
		height := 1
		for i, c := range cells {
			split[i] = strings.Split(c, "\n")
			height = max(height, len(split[i]))
		}
		for l := range height {
			var b strings.Builder
			b.WriteString("|")
			for i, lines := range split {
				c := ""
				if l < len(lines) {
					c = lines[l]
				}
				pad := widths[i] - utf8.RuneCountInString(c)
				left := 0
				if center {
					left = pad / 2
				}
				b.WriteString(" " + strings.Repeat(" ", left) + c + strings.Repeat(" ", pad-left) + " |")
			}
			fmt.Fprintln(w, b.String())
		}
	}
	fmt.Fprintln(w, sep.String())
	line(header, true)
	fmt.Fprintln(w, sep.String())
	for _, r := range rows {
		line(r, false)
		fmt.Fprintln(w, sep.String())
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeYAML prints v as block-style YAML in the key order of its JSON
// encoding (JSON is YAML, so its node tree keeps the order).
func writeYAML(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var node yaml.Node
	if err := yaml.Unmarshal(raw, &node); err != nil {
		return err
	}
	blockStyle(&node)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return err
	}
	return enc.Close()
}

func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}
