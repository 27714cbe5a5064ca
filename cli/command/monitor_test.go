package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/cli/command"
)

// lockedBuffer is a bytes.Buffer a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// monitorLines runs `trustlog monitor args...` until it has printed n
// lines (at most 20 seconds) and returns them.
func monitorLines(t *testing.T, c cliEnv, n int, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- command.Run(ctx, append([]string{"monitor"}, args...), strings.NewReader(""), &out, &out, c.getenv)
	}()
	for strings.Count(out.String(), "\n") < n {
		select {
		case err := <-done:
			t.Fatalf("monitor %v stopped: %v\n%s", args, err, out.String())
		case <-ctx.Done():
			t.Fatalf("monitor %v after 20 s:\n%s", args, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("monitor %v: %v", args, err)
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")[:n]
}

// TestMonitorAndHistoryNameTypesAlike: `monitor -f json` carries each
// event's sequence with the envelope as stored, and `audit history` names
// event types as `monitor` prints them (and takes them in --type).
func TestMonitorAndHistoryNameTypesAlike(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	admin.mustRun(t, "", "config", "trust", "add", filepath.Join("testdata", "certs", "alice.crt"), "--name", "alice")
	admin.mustRun(t, "", "config", "set", "user.team", "blue")
	admin.mustRun(t, "", "config", "trust", "remove", shortFP(t, admin, "alice"))

	jsonType := map[string]string{} // by sequence
	for _, line := range monitorLines(t, admin, 4, "--since", "1", "-f", "json") {
		var ev struct {
			Seq   uint64
			Event struct{ Type string }
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Seq == 0 || ev.Event.Type == "" {
			t.Fatalf("monitor -f json line %q: %v (want {\"seq\":N,\"event\":{...}})", line, err)
		}
		jsonType[strconv.FormatUint(ev.Seq, 10)] = ev.Event.Type
	}
	prettyType := map[string]string{}
	for _, line := range monitorLines(t, admin, 4, "--since", "1") {
		f := strings.Fields(line) // seq time type subject by actor
		prettyType[f[0]] = f[2]
	}
	history := admin.mustRun(t, "", "audit", "history", "alice", "-f", "csv")

	// History rows are seq,time,type,action,actor,method,address; each
	// names its event as monitor does, in pretty and JSON alike.
	rows := strings.Split(strings.TrimSuffix(history, "\n"), "\n")
	if len(rows) != 2 {
		t.Fatalf("audit history alice:\n%s", history)
	}
	for _, row := range rows {
		f := strings.Split(row, ",")
		if prettyType[f[0]] != f[2] || jsonType[f[0]] != "trustlog."+f[2] {
			t.Errorf("event %s: audit history says %q, monitor %q, monitor -f json %q", f[0], f[2], prettyType[f[0]], jsonType[f[0]])
		}
	}
	// The type as history prints it filters monitor.
	only := monitorLines(t, admin, 1, "--since", "1", "--type", strings.Split(rows[1], ",")[2])
	if !strings.Contains(only[0], " certificate.removed.v1 ") {
		t.Errorf("monitor --type from history: %q", only[0])
	}

	golden(t, "audit-history.csv", regexp.MustCompile(`,[0-9TZ:-]{20},`).ReplaceAllString(
		regexp.MustCompile(`,[^,]*,unix,`).ReplaceAllString(history, ",<user>,unix,"), ",<time>,"))
}
