package frontdoor_test

import (
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/frontdoor"
)

func TestReserved(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"X-Trustlog-Restricted", true},
		{"x-trustlog-identity", true},
		{"X_Trustlog_Restricted", true},
		{"X_TRUSTLOG_PROJECTS", true},
		{"X-Trustlog_Method", true},
		{"X.Trustlog.Type", true},
		{"X_Trustlog_Anything_Else", true},
		{"X-Trustlog-", true},
		{"X-Trustlog", false},
		{"X-Trustlogger", false},
		{"XTrustlog-Identity", false},
		{"X-Forwarded-For", false},
		{"", false},
	} {
		if got := frontdoor.Reserved(tc.name); got != tc.want {
			t.Errorf("Reserved(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, h := range frontdoor.Headers() {
		if !frontdoor.Reserved(h) {
			t.Errorf("our own %s is not reserved", h)
		}
	}
}

// TestNewStripsLookalikes: whatever the client sends under names an
// upstream could fold into ours, the upstream receives each identity
// header once, with Trustlog's value, and no other reserved header.
func TestNewStripsLookalikes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
	}))
	t.Cleanup(up.Close)
	h, err := frontdoor.New(up.URL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	id := authn.Identity{Trusted: true, Method: "tls", Name: "fp", Fingerprint: "fp", Type: "client", Restricted: true, Projects: []string{"web"}}
	r := httptest.NewRequestWithContext(authn.WithIdentity(t.Context(), id), "GET", "/app", nil)
	// Set directly in the map: the names are sent as written.
	for name, v := range map[string]string{
		"X-Trustlog-Restricted": "false", "X_Trustlog_Restricted": "false", "x_trustlog_identity": "admin",
		"X-Trustlog_Projects": "*", "X.Trustlog.Method": "unix", "X_Trustlog_Type": "server",
		"X_TRUSTLOG_FINGERPRINT": "other", "X_Trustlog_Admin": "true",
	} {
		r.Header[name] = []string{v}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("proxied: %d %s", w.Code, w.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	// Independent of Reserved: the folding of Go's net/http/cgi and WSGI
	// hosts ("_" for "-", any case), and of "." too.
	fold := strings.NewReplacer("_", "-", ".", "-")
	reserved := map[string][]string{}
	for name, vs := range got {
		if strings.HasPrefix(fold.Replace(strings.ToLower(name)), "x-trustlog") {
			reserved[name] = vs
		}
	}
	want := map[string][]string{
		frontdoor.HeaderIdentity: {"fp"}, frontdoor.HeaderFingerprint: {"fp"}, frontdoor.HeaderMethod: {"tls"},
		frontdoor.HeaderType: {"client"}, frontdoor.HeaderRestricted: {"true"}, frontdoor.HeaderProjects: {"web"},
	}
	if diff := cmp.Diff(want, reserved); diff != "" {
		t.Errorf("reserved headers at the upstream (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(want)), slices.Sorted(slices.Values(frontdoor.Headers()))); diff != "" {
		t.Errorf("Headers() (-want +got):\n%s", diff)
	}
}
