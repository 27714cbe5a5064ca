package daemon_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestReadyLineTiming: trustlogd's ready line says how its start went: the
// whole start, the snapshot it restored (sequence and time taken) and the
// events it replayed after it (count and time taken). On a fresh directory
// there is no snapshot; after a restart from a snapshot only the tail is
// replayed.
func TestReadyLineTiming(t *testing.T) {
	t.Parallel()
	dir := dmShortDir(t)
	clock := newTestClock()

	td := dmStart(t, dir, clock, func(c *daemon.Config) { c.SnapshotEvery, c.SnapshotInterval = 1, 20*time.Millisecond })
	ready := readyFields(t, td.log.String())
	if ready["snapshot_seq"] != "0" || ready["replayed"] != "0" {
		t.Errorf("fresh start: snapshot_seq=%q replayed=%q, want 0 and 0", ready["snapshot_seq"], ready["replayed"])
	}
	checkTimings(t, ready)
	td.trust(t, td.cert(t, "a"), api.CertificatesPost{Name: "a"})
	snap := td.lastSeq(t)
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	for td.d.Store().LastSnapshotSeq(ctx) < snap {
		select {
		case <-ctx.Done():
			t.Fatalf("no snapshot at %d in time:\n%s", snap, td.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	td.d.Close()

	// Events after the snapshot (none is taken: SnapshotEvery is the default).
	td = dmStart(t, dir, clock)
	td.trust(t, td.cert(t, "b"), api.CertificatesPost{Name: "b"})
	td.trust(t, td.cert(t, "c"), api.CertificatesPost{Name: "c"})
	last := td.lastSeq(t)
	td.d.Close()

	td = dmStart(t, dir, clock)
	ready = readyFields(t, td.log.String())
	if got, want := ready["snapshot_seq"], strconv.FormatUint(snap, 10); got != want {
		t.Errorf("restart: snapshot_seq=%q, want %s", got, want)
	}
	if got, want := ready["replayed"], strconv.FormatUint(last-snap, 10); got != want {
		t.Errorf("restart: replayed=%q, want %s (stream at %d)", got, want, last)
	}
	checkTimings(t, ready)
}

// readyFields returns the key=value fields of the "trustlogd ready" line in
// a text-handler log.
func readyFields(t *testing.T, log string) map[string]string {
	t.Helper()
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `msg="trustlogd ready"`) {
			continue
		}
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		return fields
	}
	t.Fatalf("no ready line in the log:\n%s", log)
	return nil
}

// checkTimings checks that the ready line's durations parse, and that the
// whole start took at least its two timed parts.
func checkTimings(t *testing.T, ready map[string]string) {
	t.Helper()
	var sum time.Duration
	for _, k := range []string{"snapshot_restore", "replay", "startup"} {
		d, err := time.ParseDuration(ready[k])
		if err != nil {
			t.Errorf("ready line: %s=%q: %v", k, ready[k], err)
			continue
		}
		if k == "startup" && d < sum {
			t.Errorf("ready line: startup=%v is shorter than snapshot_restore+replay=%v", d, sum)
		}
		sum += d
	}
}
