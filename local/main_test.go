package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestSyncFlag: --sync takes always or interval:<duration>, and is
// refused for an external NATS cluster, whose servers have their own
// configuration; both before anything starts.
func TestSyncFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "fail/unknown policy", args: []string{"--sync", "sometimes"}, want: `invalid value "sometimes" for flag -sync`},
		{name: "fail/interval without unit", args: []string{"--sync", "interval:5"}, want: "invalid value"},
		{name: "fail/interval too long", args: []string{"--sync", "interval:1h"}, want: "want 1ms to 10m0s"},
		{name: "fail/interval with --nats", args: []string{"--sync", "interval:1s", "--nats", "nats://127.0.0.1:1"}, want: "with --nats, set jetstream { sync_interval }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			args := append([]string{"--dir", t.TempDir()}, tc.args...)
			err := run(context.Background(), args, &stderr, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
	var stderr bytes.Buffer
	_ = run(context.Background(), []string{"--help"}, &stderr, func(string) string { return "" })
	if !strings.Contains(stderr.String(), "-sync value") || !strings.Contains(stderr.String(), "(default always)") {
		t.Errorf("--help does not show --sync and its default:\n%s", stderr.String())
	}
}
