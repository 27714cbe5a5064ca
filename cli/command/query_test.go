package command_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/cli/client"
)

// TestQueryRaw: `query --raw` prints the reply body as the server sent it
// (so /1.0/metrics shows the Prometheus text), error replies included,
// and still fails on them; without --raw a reply that is not JSON is
// printed as it came, as incus does.
func TestQueryRaw(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}

	for _, args := range [][]string{{"query", "--raw", "/1.0/metrics"}, {"query", "/1.0/metrics"}} {
		out := admin.mustRun(t, "", args...)
		if !strings.Contains(out, "# TYPE ") || !strings.Contains(out, "# HELP ") || !strings.HasSuffix(out, "\n") {
			t.Errorf("trustlog %s printed:\n%.300s", strings.Join(args, " "), out)
		}
	}

	var env struct {
		Type       string          `json:"type"`
		StatusCode int             `json:"status_code"`
		Metadata   json.RawMessage `json:"metadata"`
	}
	out := admin.mustRun(t, "", "query", "--raw", "/1.0")
	if err := json.Unmarshal([]byte(out), &env); err != nil || env.Type != "sync" || env.StatusCode != 200 || !strings.Contains(string(env.Metadata), `"api_version":"1.0"`) {
		t.Errorf("query --raw /1.0: %v\n%s", err, out)
	}

	out, _, err := admin.run(t, "", "query", "--raw", "/1.0/certificates/nosuch")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("query --raw of a missing entry: err = %v, want a 404", err)
	}
	var errEnv struct {
		Type      string `json:"type"`
		ErrorCode int    `json:"error_code"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &errEnv); err != nil || errEnv.Type != "error" || errEnv.ErrorCode != 404 || errEnv.Error != apiErr.Message {
		t.Errorf("query --raw error reply: %v\n%s", err, out)
	}
	if out, _, err := admin.run(t, "", "query", "/1.0/certificates/nosuch"); err == nil || out != "" {
		t.Errorf("query of a missing entry: %q, %v", out, err)
	}
}
