package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/local/faults/history"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGolden draws testdata/small.jsonl, a 20-second history with one
// fault of each kind, heals, restarts, an unhealed partition at the end
// and every result, and compares the SVG with testdata/small.svg.
func TestGolden(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "small.svg")
	var stderr bytes.Buffer
	if err := run([]string{"-in", "testdata/small.jsonl", "-out", out}, nil, nil, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "small.svg")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", golden, diff)
	}
}

// TestSizeIsBounded: an hour of operations draws no more marks than the
// bins of its rows.
func TestSizeIsBounded(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := &history.History{}
	for i := range 50000 {
		at := t0.Add(time.Duration(i) * 73 * time.Millisecond)
		h.Ops = append(h.Ops, history.Op{ID: int64(i), Kind: history.Kinds[i%len(history.Kinds)], Key: "k",
			Invoke: at, Complete: at.Add(time.Millisecond), Result: history.Results[i%len(history.Results)]})
	}
	svg, err := draw(h, "hour", 1000)
	if err != nil {
		t.Fatal(err)
	}
	bins := (1000 - left - right) / binW
	lanes := len(history.Kinds)
	if n, most := strings.Count(svg, "<rect"), lanes*len(history.Results)*bins+lanes+2; n > most {
		t.Errorf("%d rects, want at most %d", n, most)
	}
	if !strings.Contains(svg, ">60 min</text>") {
		t.Error("the axis does not reach 60 min")
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"op\":\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fail/no input", nil, "usage"},
		{"fail/missing file", []string{"-in", filepath.Join(dir, "none.jsonl")}, "no such file"},
		{"fail/empty history", []string{"-in", empty}, "nothing to draw"},
		{"fail/bad line", []string{"-in", bad}, "line 1"},
		{"fail/narrow", []string{"-in", empty, "-width", "100"}, "at least 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(tt.args, nil, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestTruncatedStdin: a history cut short, as a killed harness leaves it,
// still draws, from stdin to stdout, and says so in the title.
func TestTruncatedStdin(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile("testdata/small.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"-in", "-"}, bytes.NewReader(in[:len(in)/2]), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(truncated)</text>") || !strings.HasSuffix(out.String(), "</svg>\n") {
		t.Errorf("output does not look like a truncated history's chart:\n%.300s", out.String())
	}
}
