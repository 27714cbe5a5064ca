package gate_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/response"
)

// countingReader counts the bytes the client's transport took from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// send makes one request with body (chunked when size is -1) and decodes
// the envelope of the answer.
func (f *fixture) send(t *testing.T, c *http.Client, method, path string, body io.Reader, size int64) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	return f.exchange(t, c, req)
}

// TestBodyAfterAdmission: the gate decides who may send a body before
// anyone reads it. A caller an admin-only route refuses is answered
// without its handler running, so without its body being read; a body over
// the route's cap, or over the cap of callers who are not trusted, is
// refused by its declared length before it is read, and cut off at the
// cap when its length is not declared.
func TestBodyAfterAdmission(t *testing.T) {
	t.Parallel()
	adminCert, adminEv := newCert(t, events.CertificateTypeClient)
	restrictedCert, restrictedEv := newCert(t, events.CertificateTypeClient)
	restrictedEv.Restricted, restrictedEv.Projects = true, []string{"p1"}
	metricsCert, metricsEv := newCert(t, events.CertificateTypeMetrics)
	var ran atomic.Int64 // handler runs
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			response.Fail(w, r, nil, err)
			return
		}
		response.Sync(w, map[string]int64{"read": n})
	})
	f := newFixtureWith(t, []gate.Route{
		{Method: "PUT", Path: "/admin", Admin: true, MaxBody: 8 << 20, Handler: readAll},
		{Method: "PUT", Path: "/worded", Admin: true, NotAdmin: response.Forbidden("Certificate is restricted"), Handler: readAll},
		{Method: "PUT", Path: "/small", MaxBody: 1000, Handler: readAll},
		{Method: "POST", Path: "/open", Untrusted: true, MaxBody: 8 << 20, Handler: readAll},
	}, adminEv, restrictedEv, metricsEv)
	callers := map[string]*http.Client{
		"anonymous":  f.client(t, nil),
		"admin":      f.client(t, adminCert),
		"restricted": f.client(t, restrictedCert),
		"metrics":    f.client(t, metricsCert),
	}
	const big = 4 << 20
	for _, tc := range []struct {
		name     string
		caller   string
		method   string
		path     string
		size     int64 // body length; negative: that many bytes, chunked
		wantCode int
		wantErr  string
		wantRan  bool
	}{
		{name: "ok/admin sends 4 MiB to an admin route", caller: "admin", method: "PUT", path: "/admin", size: big, wantCode: 200, wantRan: true},
		{name: "fail/restricted is refused before the body", caller: "restricted", method: "PUT", path: "/admin", size: big, wantCode: 403, wantErr: "not authorized"},
		{name: "fail/restricted chunked is refused before the body", caller: "restricted", method: "PUT", path: "/admin", size: -big, wantCode: 403, wantErr: "not authorized"},
		{name: "fail/metrics is refused before the body", caller: "metrics", method: "PUT", path: "/admin", size: big, wantCode: 403, wantErr: "not authorized"},
		{name: "fail/anonymous is refused before the body", caller: "anonymous", method: "PUT", path: "/admin", size: big, wantCode: 403, wantErr: "not authorized"},
		{name: "fail/the route words its refusal", caller: "restricted", method: "PUT", path: "/worded", size: 10, wantCode: 403, wantErr: "Certificate is restricted"},
		{name: "ok/restricted within a route's cap", caller: "restricted", method: "PUT", path: "/small", size: 1000, wantCode: 200, wantRan: true},
		{name: "fail/declared length over the route's cap", caller: "admin", method: "PUT", path: "/small", size: 1001, wantCode: 413, wantErr: "request body larger than 1000 bytes"},
		{name: "fail/chunked body over the route's cap", caller: "admin", method: "PUT", path: "/small", size: -5000, wantCode: 413, wantErr: "request body larger than 1000 bytes", wantRan: true},
		{name: "ok/anonymous within the untrusted cap", caller: "anonymous", method: "POST", path: "/open", size: gate.UntrustedMaxBody, wantCode: 200, wantRan: true},
		{name: "fail/anonymous over the untrusted cap", caller: "anonymous", method: "POST", path: "/open", size: gate.UntrustedMaxBody + 1, wantCode: 413, wantErr: "request body larger than 65536 bytes"},
		{name: "fail/anonymous chunked over the untrusted cap", caller: "anonymous", method: "POST", path: "/open", size: -big, wantCode: 413, wantErr: "request body larger than 65536 bytes", wantRan: true},
		{name: "ok/admin over the untrusted cap", caller: "admin", method: "POST", path: "/open", size: big, wantCode: 200, wantRan: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ran.Load()
			n, declared := tc.size, tc.size
			if n < 0 {
				n, declared = -n, -1
			}
			got := f.send(t, callers[tc.caller], tc.method, tc.path, strings.NewReader(strings.Repeat("x", int(n))), declared)
			if got.code != tc.wantCode || got.env.Error != tc.wantErr {
				t.Fatalf("HTTP %d %q, want %d %q", got.code, got.env.Error, tc.wantCode, tc.wantErr)
			}
			if ranNow := ran.Load() != before; ranNow != tc.wantRan {
				t.Errorf("handler ran: %v, want %v", ranNow, tc.wantRan)
			}
			if tc.wantCode == 200 {
				var read map[string]int64
				if err := json.Unmarshal(got.env.Metadata, &read); err != nil || read["read"] != n {
					t.Errorf("handler read %v (%v), want %d", read, err, n)
				}
			}
		})
	}
}

// TestMaxInFlight: a route with MaxInFlight serves that many requests at
// once; the others wait for their turn and are served after.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	adminCert, adminEv := newCert(t, events.CertificateTypeClient)
	var now, most atomic.Int64
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		response.EmptySync(w)
	})
	f := newFixtureWith(t, []gate.Route{
		{Method: "PUT", Path: "/one", MaxInFlight: 1, Handler: slow},
		{Method: "PUT", Path: "/any", Handler: slow},
	}, adminEv)
	c := f.client(t, adminCert)
	for _, tc := range []struct {
		path string
		want int64
	}{{"/one", 1}, {"/any", 8}} {
		most.Store(0)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-start
				if got := f.send(t, c, "PUT", tc.path, strings.NewReader("{}"), 2); got.code != http.StatusOK {
					t.Errorf("PUT %s: HTTP %d %q", tc.path, got.code, got.env.Error)
				}
			})
		}
		close(start)
		wg.Wait()
		if tc.path == "/one" && most.Load() != tc.want || tc.path == "/any" && most.Load() < 2 {
			t.Errorf("PUT %s: at most %d at once, want %d", tc.path, most.Load(), tc.want)
		}
	}
}
