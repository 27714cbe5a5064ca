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

func writeTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var sep strings.Builder
	sep.WriteString("+")
	for _, wd := range widths {
		sep.WriteString(strings.Repeat("-", wd+2) + "+")
	}
	line := func(cells []string, center bool) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := widths[i] - utf8.RuneCountInString(c)
			left := 0
			if center {
				left = pad / 2
			}
			b.WriteString(" " + strings.Repeat(" ", left) + c + strings.Repeat(" ", pad-left) + " |")
		}
		fmt.Fprintln(w, b.String())
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

// yamlToJSON converts a YAML document to JSON, so that YAML edited by a
// person decodes into the API's JSON-tagged types.
func yamlToJSON(raw []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}
