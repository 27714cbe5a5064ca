package daemon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyDeadlineLiftedAtEOF pins what bodyDeadline relies on: once a
// body has been read to its end, net/http lifts the read deadline before
// it reads the connection to notice the client leaving. If that read
// timed out, it would cancel the request's context under a handler still
// at work (committing, say).
func TestBodyDeadlineLiftedAtEOF(t *testing.T) {
	t.Parallel()
	const within = 200 * time.Millisecond
	srv := httptest.NewUnstartedServer(bodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "context ended while the handler worked", http.StatusInternalServerError)
		case <-time.After(3 * within):
			w.WriteHeader(http.StatusNoContent)
		}
	}), within, 1<<20))
	srv.StartTLS()
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL, "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("HTTP %d %s", resp.StatusCode, body)
	}
}
