package gate

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRouterMatchesMux: the exact lookup in front of the mux changes which
// handler answers no request. Every request below gets the same status,
// body and Location from the router as from the mux alone.
func TestRouterMatchesMux(t *testing.T) {
	t.Parallel()
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s fp=%q", name, r.Method, r.PathValue("fingerprint"))
		})
	}
	build := func(exactOn bool) http.Handler {
		rt := newRouter()
		for _, p := range []string{
			"GET /1.0", "PATCH /1.0", "GET /1.0/certificates", "POST /1.0/certificates",
			"GET /1.0/certificates/{fingerprint}", "GET /1.0/events/", " /",
		} {
			method, path, _ := strings.Cut(p, " ")
			rt.handle(method, path, named(p))
		}
		if !exactOn {
			rt.exact = nil // the mux alone
		}
		return rt
	}
	withExact, muxOnly := build(true), build(false)
	for _, tc := range []struct{ method, target string }{
		{"GET", "/1.0"}, {"HEAD", "/1.0"}, {"PATCH", "/1.0"}, {"PUT", "/1.0"}, {"DELETE", "/1.0"},
		{"GET", "/1.0/"}, {"GET", "/1.0/certificates"}, {"POST", "/1.0/certificates"},
		{"GET", "/1.0/certificates/"}, {"GET", "/1.0/certificates/abc"}, {"GET", "/1.0/certificates/a%2Fb"},
		{"GET", "/1.0/../1.0"}, {"GET", "//1.0"}, {"GET", "/1.0/./certificates"}, {"GET", "/%31.0"},
		{"GET", "/1.0/events"}, {"GET", "/1.0/events/"}, {"GET", "/nope"}, {"GET", "/"},
		{"GET", "/1.0?project=p"}, {"OPTIONS", "*"}, {"GET", "/1.0/certificates/{fingerprint}"},
	} {
		var got, want string
		for i, h := range []http.Handler{withExact, muxOnly} {
			r := httptest.NewRequest(tc.method, "http://trustlog.test"+strings.TrimPrefix(tc.target, "*"), nil)
			if tc.target == "*" {
				r.URL.Path, r.RequestURI = "*", "*"
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body, _ := io.ReadAll(w.Body)
			out := fmt.Sprintf("%d %q location=%q", w.Code, body, w.Header().Get("Location"))
			if i == 0 {
				got = out
			} else {
				want = out
			}
		}
		if got != want {
			t.Errorf("%s %s: router %s, mux %s", tc.method, tc.target, got, want)
		}
	}
}
