package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/functions/api"
)

// selfSigned makes a P-384 certificate for 127.0.0.1 valid from notBefore
// to notAfter.
func selfSigned(t *testing.T, cn string, notBefore, notAfter time.Time, eku x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func validServerCert(t *testing.T) tls.Certificate {
	t.Helper()
	return selfSigned(t, "server", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), x509.ExtKeyUsageServerAuth)
}

// envelope writes an LXD-style reply.
func envelope(w http.ResponseWriter, status int, typ, msg string, metadata any) {
	raw, _ := json.Marshal(metadata)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	code := 0
	if typ == api.TypeError {
		code = status
	}
	json.NewEncoder(w).Encode(api.Response{Type: typ, ErrorCode: code, Error: msg, Metadata: raw})
}

// startTLS starts an HTTPS server on 127.0.0.1 with cert and the TLS
// settings of cfg (nil: TLS 1.3, client certificates requested).
func startTLS(t *testing.T, cert tls.Certificate, cfg *tls.Config, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert}
	}
	cfg.Certificates = []tls.Certificate{cert}
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestDoEnvelope(t *testing.T) {
	t.Parallel()
	cert := validServerCert(t)
	var gotIfMatch, gotBody string
	srv := startTLS(t, cert, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/1.0":
			gotIfMatch = r.Header.Get("If-Match")
			raw, _ := io.ReadAll(r.Body)
			gotBody = string(raw)
			w.Header().Set("ETag", `"abc"`)
			envelope(w, http.StatusOK, api.TypeSync, "", map[string]any{"auth": "trusted"})
		case "/1.0/operations/x":
			w.Header().Set("Location", "/1.0/operations/x")
			envelope(w, http.StatusAccepted, api.TypeAsync, "", map[string]any{"id": "x"})
		case "/1.0/forbidden":
			envelope(w, http.StatusForbidden, api.TypeError, "not authorized", nil)
		case "/1.0/empty-error":
			envelope(w, http.StatusConflict, api.TypeError, "", nil)
		default:
			http.Error(w, "plain text", http.StatusNotFound)
		}
	}))
	c, err := client.New(client.Options{Addr: srv.URL, Pinned: cert.Leaf})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	resp, err := c.Do(ctx, http.MethodPut, "/1.0", api.ServerPut{Config: map[string]string{"k": "v"}}, `"abc"`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Type != api.TypeSync || resp.ETag != `"abc"` || string(resp.Metadata) != `{"auth":"trusted"}` {
		t.Errorf("sync reply = %+v", resp)
	}
	if gotIfMatch != `"abc"` || gotBody != `{"config":{"k":"v"}}` {
		t.Errorf("server got If-Match %q body %q", gotIfMatch, gotBody)
	}

	resp, err = c.Do(ctx, http.MethodPost, "/1.0/operations/x", nil, "")
	if err != nil || resp.Status != 202 || resp.Type != api.TypeAsync {
		t.Errorf("async reply = %+v, %v", resp, err)
	}

	var srvObj api.Server
	etag, err := c.Get(ctx, "/1.0", &srvObj)
	if err != nil || etag != `"abc"` || srvObj.Auth != "trusted" || gotIfMatch != "" {
		t.Errorf("Get = %q, %+v, %v (If-Match sent: %q)", etag, srvObj, err, gotIfMatch)
	}

	for _, tc := range []struct {
		name, path string
		status     int
		msg        string
	}{
		{name: "fail/error envelope", path: "/1.0/forbidden", status: 403, msg: "not authorized"},
		{name: "fail/error without text", path: "/1.0/empty-error", status: 409, msg: "Conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Do(ctx, http.MethodGet, tc.path, nil, "")
			var apiErr *client.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v (%T), want *client.Error", err, err)
			}
			if apiErr.Status != tc.status || err.Error() != tc.msg {
				t.Errorf("err = %d %q, want %d %q", apiErr.Status, err.Error(), tc.status, tc.msg)
			}
		})
	}
	if _, err := c.Do(ctx, http.MethodGet, "/not-json", nil, ""); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("non-JSON reply: err = %v", err)
	}
}

func TestPinnedCertificate(t *testing.T) {
	t.Parallel()
	cert := validServerCert(t)
	other := validServerCert(t)
	expired := selfSigned(t, "old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), x509.ExtKeyUsageServerAuth)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		envelope(w, http.StatusOK, api.TypeSync, "", map[string]any{})
	})
	srv := startTLS(t, cert, nil, ok)
	expiredSrv := startTLS(t, expired, nil, ok)

	t.Run("ok/same certificate", func(t *testing.T) {
		t.Parallel()
		c, _ := client.New(client.Options{Addr: srv.URL, Pinned: cert.Leaf})
		if _, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/another certificate", func(t *testing.T) {
		t.Parallel()
		c, _ := client.New(client.Options{Addr: srv.URL, Remote: "srv", Pinned: other.Leaf, PinPath: "/conf/servercerts/srv.crt"})
		_, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, "")
		var mismatch *client.CertMismatchError
		if !errors.As(err, &mismatch) {
			t.Fatalf("err = %v, want *CertMismatchError", err)
		}
		want := client.CertMismatchError{Remote: "srv", Pinned: client.Fingerprint(other.Leaf), Presented: client.Fingerprint(cert.Leaf), PinPath: "/conf/servercerts/srv.crt"}
		if diff := cmp.Diff(want, *mismatch); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
		for _, s := range []string{mismatch.Pinned, mismatch.Presented, "trustlog remote remove srv", "replace /conf/servercerts/srv.crt"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error text lacks %q: %s", s, err)
			}
		}
	})
	t.Run("fail/pinned certificate expired", func(t *testing.T) {
		t.Parallel()
		c, _ := client.New(client.Options{Addr: expiredSrv.URL, Remote: "old", Pinned: expired.Leaf})
		_, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, "")
		if err == nil || !strings.Contains(err.Error(), "not valid now") {
			t.Errorf("err = %v, want a validity error", err)
		}
	})
}

func TestVerifyWithoutPin(t *testing.T) {
	t.Parallel()
	cert := validServerCert(t)
	srv := startTLS(t, cert, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		envelope(w, http.StatusOK, api.TypeSync, "", map[string]any{})
	}))
	t.Run("fail/system roots", func(t *testing.T) {
		t.Parallel()
		c, _ := client.New(client.Options{Addr: srv.URL})
		_, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, "")
		if err == nil || !client.IsCertificateError(err) {
			t.Errorf("err = %v, want a certificate error", err)
		}
	})
	t.Run("ok/roots hold the server", func(t *testing.T) {
		t.Parallel()
		pool := x509.NewCertPool()
		pool.AddCert(cert.Leaf)
		c, _ := client.New(client.Options{Addr: srv.URL, Roots: pool})
		if _, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/fetch certificate", func(t *testing.T) {
		t.Parallel()
		got, err := client.FetchCertificate(context.Background(), srv.URL, false)
		if err != nil {
			t.Fatal(err)
		}
		if client.Fingerprint(got) != client.Fingerprint(cert.Leaf) {
			t.Error("FetchCertificate returned another certificate")
		}
	})
	if client.IsCertificateError(errors.New("connection refused")) {
		t.Error("IsCertificateError of a plain error")
	}
}

func TestTLSVersion(t *testing.T) {
	t.Parallel()
	cert := validServerCert(t)
	srv := startTLS(t, cert, &tls.Config{MaxVersion: tls.VersionTLS12}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		envelope(w, http.StatusOK, api.TypeSync, "", map[string]any{})
	}))
	for _, tc := range []struct {
		name     string
		insecure bool
		fail     bool
	}{
		{name: "fail/TLS 1.2 server", fail: true},
		{name: "ok/TLS 1.2 with TRUSTLOG_INSECURE_TLS", insecure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := client.New(client.Options{Addr: srv.URL, Pinned: cert.Leaf, InsecureTLS: tc.insecure})
			_, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, "")
			if (err != nil) != tc.fail {
				t.Errorf("err = %v", err)
			}
			_, err = client.FetchCertificate(context.Background(), srv.URL, tc.insecure)
			if (err != nil) != tc.fail {
				t.Errorf("FetchCertificate err = %v", err)
			}
		})
	}
	if got := client.TLSConfig(client.Options{}).MinVersion; got != tls.VersionTLS13 {
		t.Errorf("MinVersion = %x, want TLS 1.3", got)
	}
}

// TestClientCertificateAlwaysSent: the client certificate goes out even
// when the server names acceptable CAs that did not issue it (PKI mode).
func TestClientCertificateAlwaysSent(t *testing.T) {
	t.Parallel()
	cert := validServerCert(t)
	clientCert := selfSigned(t, "me@host", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), x509.ExtKeyUsageClientAuth)
	unrelatedCA := selfSigned(t, "some CA", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), x509.ExtKeyUsageAny)
	cas := x509.NewCertPool()
	cas.AddCert(unrelatedCA.Leaf)
	var peer string
	srv := startTLS(t, cert, &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert, ClientCAs: cas},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) > 0 {
				peer = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			envelope(w, http.StatusOK, api.TypeSync, "", map[string]any{})
		}))
	c, _ := client.New(client.Options{Addr: srv.URL, Pinned: cert.Leaf, Certificate: &clientCert})
	if _, err := c.Do(context.Background(), http.MethodGet, "/1.0", nil, ""); err != nil {
		t.Fatal(err)
	}
	if peer != "me@host" {
		t.Errorf("server saw client certificate %q, want me@host", peer)
	}
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "tlcli") // short: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "unix.socket")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		envelope(w, http.StatusOK, api.TypeSync, "", map[string]any{"path": r.URL.RequestURI(), "tls": r.TLS != nil})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	c, err := client.New(client.Options{Addr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if _, err := c.Get(context.Background(), "/1.0/certificates?recursion=1&filter=", &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"path": "/1.0/certificates?recursion=1&filter=", "tls": false}, got); diff != "" {
		t.Errorf("request over the socket (-want +got):\n%s", diff)
	}
}

func TestDaemonDown(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "unix.socket")
	c, err := client.New(client.Options{Addr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), http.MethodGet, "/1.0", nil, "")
	var down *client.DaemonDownError
	if !errors.As(err, &down) || down.Socket != sock {
		t.Fatalf("err = %v, want *DaemonDownError for %s", err, sock)
	}
	if want := "The trustlog daemon doesn't appear to be started (socket path: " + sock + ")"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestNewRejectsOtherSchemes(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"http://127.0.0.1:8443", "127.0.0.1:8443", ""} {
		if _, err := client.New(client.Options{Addr: addr}); err == nil {
			t.Errorf("New(%q) succeeded", addr)
		}
	}
}

func ExampleFingerprint() {
	// The fingerprint is the SHA-256 of the DER certificate, in lowercase hex.
	fmt.Println(len(client.Fingerprint(&x509.Certificate{Raw: []byte("der")})))
	// Output: 64
}
