package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/frontdoor"
	"github.com/trustlog/trustlog/local/daemon"
)

// seen is what the upstream received.
type seen struct {
	Path, Query, Auth                               string
	Identity, Fingerprint, Method, Type, Restricted string
	Projects, Forwarded                             string
}

// startUpstream serves an echo API on a unix socket (or TCP when tcp is
// set) that reports the headers it received.
func startUpstream(t *testing.T, tcp bool) string {
	t.Helper()
	var ln net.Listener
	var err error
	target := ""
	if tcp {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		target = "http://" + "127.0.0.1:" + strings.Split(ln.Addr().String(), ":")[1]
	} else {
		sock := filepath.Join(t.TempDir(), "up.sock")
		ln, err = net.Listen("unix", sock)
		target = "unix:" + sock
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{
			Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
			Identity: r.Header.Get("X-Trustlog-Identity"), Fingerprint: r.Header.Get("X-Trustlog-Fingerprint"),
			Method: r.Header.Get("X-Trustlog-Method"), Type: r.Header.Get("X-Trustlog-Type"), Restricted: r.Header.Get("X-Trustlog-Restricted"),
			Projects: r.Header.Get("X-Trustlog-Projects"), Forwarded: r.Header.Get("X-Forwarded-For"),
		})
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return target
}

// TestFrontDoor puts an upstream API behind trustlogd: trusted callers
// reach it with their identity in X-Trustlog-* headers (the client's own
// copies replaced), everyone else gets the API's refusal.
func TestFrontDoor(t *testing.T) {
	t.Parallel()
	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "unix", true: "tcp"}[tcp]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			target := startUpstream(t, tcp)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", Upstream: target,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			s := newServer(t, d, nil)
			pair, cert := newCert(t, "", "ci")
			s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "ci", Restricted: true, Projects: []string{"web", "db"},
				Certificate: base64.StdEncoding.EncodeToString(cert.Raw)})
			stranger, _ := newCert(t, "", "stranger")

			get := func(c *http.Client, path string, hdr map[string]string) (int, []byte) {
				req, _ := http.NewRequest("GET", "https://"+d.HTTPSAddr()+path, nil)
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, raw
			}
			code, raw := get(tlsClient(&pair), "/app/items?x=1", map[string]string{"X-Trustlog-Identity": "admin", "X-Trustlog-Restricted": "false"})
			var got seen
			if err := json.Unmarshal(raw, &got); code != 200 || err != nil {
				t.Fatalf("trusted caller: %d %s", code, raw)
			}
			want := seen{Path: "/app/items", Query: "x=1", Identity: fingerprintOf(cert), Fingerprint: fingerprintOf(cert),
				Method: "tls", Type: "client", Restricted: "true", Projects: "web,db", Forwarded: "127.0.0.1"}
			if got != want {
				t.Errorf("upstream saw %+v, want %+v", got, want)
			}
			for name, c := range map[string]*http.Client{"no certificate": tlsClient(nil), "unknown certificate": tlsClient(&stranger)} {
				code, raw := get(c, "/app/items", map[string]string{"X-Trustlog-Identity": "admin"})
				var env api.Response
				_ = json.Unmarshal(raw, &env)
				if code != 403 || env.Type != "error" || env.Error != "not authorized" {
					t.Errorf("%s: %d %s, want the 403 envelope", name, code, raw)
				}
			}
			// Trustlog's own API is still served, not proxied.
			if code, raw := get(tlsClient(&pair), "/1.0", nil); code != 200 || !strings.Contains(string(raw), `"auth":"trusted"`) {
				t.Errorf("GET /1.0 behind the front door: %d %s", code, raw)
			}
		})
	}
}

// TestFrontDoorUpstreamDown: an unreachable upstream is a 502 in the
// envelope for trusted callers (and still 403 for the others).
func TestFrontDoorUpstreamDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", Upstream: "unix:" + filepath.Join(t.TempDir(), "absent.sock"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := newServer(t, d, nil)
	pair, cert := newCert(t, "", "ci")
	s.trust(t, cert, "ci")
	code, env := do(t, tlsClient(&pair), "GET", "https://"+d.HTTPSAddr()+"/app", nil)
	if code != http.StatusBadGateway || env.Type != "error" {
		t.Errorf("upstream down: %d %+v", code, env)
	}
	if _, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), Upstream: "ftp://x"}); err == nil {
		t.Error("an ftp upstream was accepted")
	}
}

// cgiEnvScript is a CGI program answering with its environment, one
// NAME=value a line.
const cgiEnvScript = "printf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec env\n"

// startCGIUpstream serves cgiEnvScript through Go's net/http/cgi host on a
// loopback port, the way a CGI or WSGI application sits behind a web
// server. received returns the header of every request the host got, as
// it got it.
func startCGIUpstream(t *testing.T) (target string, received func() []http.Header) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "env.cgi")
	if err := os.WriteFile(script, []byte(cgiEnvScript), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []http.Header
	host := &cgi.Handler{Path: "/bin/sh", Args: []string{script}, Stderr: io.Discard}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		host.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), func() []http.Header {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// TestFrontDoorLookalikeHeaders: a client sends identity headers under
// names a CGI host folds into ours (X_Trustlog_Restricted and
// X-Trustlog-Restricted both become HTTP_X_TRUSTLOG_RESTRICTED). The CGI
// application behind the front door sees each identity variable once, with
// Trustlog's value, and no other X-Trustlog variable; the host received
// each identity header once.
func TestFrontDoorLookalikeHeaders(t *testing.T) {
	t.Parallel()
	target, received := startCGIUpstream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", Upstream: target,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := newServer(t, d, nil)
	pair, cert := newCert(t, "", "ci")
	s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "ci", Restricted: true, Projects: []string{"web", "db"},
		Certificate: base64.StdEncoding.EncodeToString(cert.Raw)})
	fp := fingerprintOf(cert)
	ours := map[string]string{
		frontdoor.HeaderIdentity: fp, frontdoor.HeaderFingerprint: fp, frontdoor.HeaderMethod: "tls",
		frontdoor.HeaderType: "client", frontdoor.HeaderRestricted: "true", frontdoor.HeaderProjects: "web,db",
	}
	// cgiName is the variable a CGI host makes of a header name.
	cgiName := func(h string) string {
		return "HTTP_" + strings.Map(func(r rune) rune {
			switch {
			case 'a' <= r && r <= 'z':
				return r - 'a' + 'A'
			case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
				return r
			}
			return '_'
		}, h)
	}
	wantEnv := map[string]string{}
	for h, v := range ours {
		wantEnv[cgiName(h)] = v
	}
	smuggled := map[string]string{
		"X-Trustlog-Restricted": "false", "X_Trustlog_Restricted": "false", "x_trustlog_identity": "admin",
		"X-Trustlog_Projects": "*", "X_Trustlog_Method": "unix", "X.Trustlog.Method": "unix", "X_Trustlog_Type": "server",
		"X_TRUSTLOG_FINGERPRINT": "0000", "X_Trustlog_Admin": "true",
	}
	c := tlsClient(&pair)
	// Of two headers folding into one variable, Go's CGI host keeps
	// whichever its walk of the header map meets last: several requests
	// make a client's value certain to show if it gets through.
	const requests = 6
	for range requests {
		req, _ := http.NewRequest("GET", "https://"+d.HTTPSAddr()+"/app/env", nil)
		for k, v := range smuggled {
			req.Header[k] = []string{v} // sent as written
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("trusted caller: %d %s", resp.StatusCode, raw)
		}
		env := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			if strings.HasPrefix(cgiName(strings.TrimPrefix(k, "HTTP_")), "HTTP_X_TRUSTLOG") {
				env[k] = v
			}
		}
		if diff := cmp.Diff(wantEnv, env); diff != "" {
			t.Fatalf("X-Trustlog variables of the CGI application (-want +got):\n%s", diff)
		}
	}
	hs := received()
	if len(hs) != requests {
		t.Fatalf("the CGI host got %d requests, want %d", len(hs), requests)
	}
	for _, h := range hs {
		got := map[string][]string{}
		for name, vs := range h {
			if v := cgiName(name); strings.HasPrefix(v, "HTTP_X_TRUSTLOG") {
				got[v] = append(got[v], vs...)
			}
		}
		want := map[string][]string{}
		for k, v := range wantEnv {
			want[k] = []string{v}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("X-Trustlog headers at the CGI host, by variable (-want +got):\n%s", diff)
		}
	}
}
