package service_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
)

// TestCertificatesUntrusted checks the trust store is closed to callers
// that are not trusted, and that their refused requests store nothing.
func TestCertificatesUntrusted(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert, stranger := s.validCert(t, "admin"), s.validCert(t, "stranger")
	fp := s.add(t, adminCert, adminReq())
	before := s.lastSeq(t)
	for _, who := range []struct {
		name string
		c    *http.Client
	}{{"no certificate", s.client(t, nil)}, {"unknown certificate", s.client(t, stranger)}} {
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/1.0/certificates", nil},
			{"GET", "/1.0/certificates?recursion=1", nil},
			{"GET", "/1.0/certificates/" + fp, nil},
			{"PUT", "/1.0/certificates/" + fp, api.CertificatePut{Name: "x"}},
			{"PATCH", "/1.0/certificates/" + fp, api.CertificatePut{Name: "x"}},
			{"DELETE", "/1.0/certificates/" + fp, nil},
			{"PUT", "/1.0", api.ServerPut{}},
			{"PATCH", "/1.0", api.ServerPut{}},
			// POST is open to untrusted callers, but only with a trust token.
			{"POST", "/1.0/certificates", api.CertificatesPost{Certificate: stranger.B64()}},
			{"POST", "/1.0/certificates", api.CertificatesPost{Name: "t", Token: true}},
		} {
			t.Run("fail/"+who.name+"/"+tc.method+" "+tc.path, func(t *testing.T) {
				wantError(t, s.call(t, who.c, tc.method, tc.path, tc.body), 403, "not authorized")
			})
		}
	}
	s.unchanged(t, before)
	if _, rep := s.certificate(t, fp); rep.Code != 200 {
		t.Errorf("entry gone after refused requests: %s", rep)
	}
}

// TestCertificateAdd runs POST /1.0/certificates by admins with good and
// bad material. Each success stores exactly one event with the entry; each
// failure stores nothing.
func TestCertificateAdd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	now := s.clock.Now()
	adminCert, restrictedCert := s.validCert(t, "admin"), s.validCert(t, "restricted")
	s.add(t, adminCert, adminReq())
	s.add(t, restrictedCert, api.CertificatesPost{Restricted: true})
	admin, restricted := s.client(t, adminCert), s.client(t, restrictedCert)
	existing := s.validCert(t, "existing")
	s.add(t, existing, api.CertificatesPost{})

	p384, rsa2048, pemCert := s.validCert(t, "p384-client"), newCert(t, "rsa2048", "rsa-client", now.Add(-time.Hour), now.Add(time.Hour)),
		s.validCert(t, "pem-client")
	server, metrics, limited, byTLS := s.validCert(t, "server"), s.validCert(t, "metrics"), s.validCert(t, "limited"), s.validCert(t, "by-tls")
	expired := newCert(t, "p384", "expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	future := newCert(t, "p384", "future", now.Add(24*time.Hour), now.Add(48*time.Hour))
	weak := newCert(t, "rsa1024", "weak", now.Add(-time.Hour), now.Add(time.Hour))
	b64 := base64.StdEncoding.EncodeToString

	for _, tc := range []struct {
		name     string
		c        *http.Client // nil: the admin socket
		body     any
		wantCode int
		wantErr  string
		want     *events.CertificateTrusted // the event (and entry) of a success
	}{
		{name: "ok/base64 der named after its cn", body: api.CertificatesPost{Certificate: p384.B64()}, wantCode: 201,
			want: &events.CertificateTrusted{Fingerprint: p384.FP, Name: "p384-client", Type: "client", Projects: []string{}, Certificate: p384.PEM()}},
		{name: "ok/rsa 2048", body: api.CertificatesPost{Certificate: rsa2048.B64(), Type: "client"}, wantCode: 201,
			want: &events.CertificateTrusted{Fingerprint: rsa2048.FP, Name: "rsa-client", Type: "client", Projects: []string{}, Certificate: rsa2048.PEM()}},
		{name: "ok/pem with name and description", body: api.CertificatesPost{Certificate: pemCert.PEM(), Name: "named", Description: "d"},
			wantCode: 201, want: &events.CertificateTrusted{Fingerprint: pemCert.FP, Name: "named", Type: "client", Projects: []string{},
				Description: "d", Certificate: pemCert.PEM()}},
		{name: "ok/type server", body: api.CertificatesPost{Certificate: server.B64(), Type: "server"}, wantCode: 201,
			want: &events.CertificateTrusted{Fingerprint: server.FP, Name: "server", Type: "server", Projects: []string{}, Certificate: server.PEM()}},
		{name: "ok/type metrics", body: api.CertificatesPost{Certificate: metrics.B64(), Type: "metrics"}, wantCode: 201,
			want: &events.CertificateTrusted{Fingerprint: metrics.FP, Name: "metrics", Type: "metrics", Projects: []string{}, Certificate: metrics.PEM()}},
		{name: "ok/restricted with projects", body: api.CertificatesPost{Certificate: limited.B64(), Restricted: true, Projects: []string{"p2", "p1"}},
			wantCode: 201, want: &events.CertificateTrusted{Fingerprint: limited.FP, Name: "limited", Type: "client", Restricted: true,
				Projects: []string{"p2", "p1"}, Certificate: limited.PEM()}},
		{name: "ok/by an admin over tls", c: admin, body: api.CertificatesPost{Certificate: byTLS.B64()}, wantCode: 201,
			want: &events.CertificateTrusted{Fingerprint: byTLS.FP, Name: "by-tls", Type: "client", Projects: []string{}, Certificate: byTLS.PEM()}},
		{name: "fail/malformed json", body: `{"certificate":`, wantCode: 400, wantErr: "unexpected EOF"},
		{name: "fail/not an object", body: `["x"]`, wantCode: 400, wantErr: "json: cannot unmarshal array into Go value of type api.CertificatesPost"},
		{name: "fail/invalid base64", body: api.CertificatesPost{Certificate: "%%%"}, wantCode: 400, wantErr: "Invalid certificate material: ..."},
		{name: "fail/garbage der", body: api.CertificatesPost{Certificate: b64([]byte("not a certificate"))}, wantCode: 400,
			wantErr: "Invalid certificate material: ..."},
		{name: "fail/garbage pem", body: api.CertificatesPost{Certificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
			wantCode: 400, wantErr: "Invalid certificate material: ..."},
		{name: "fail/expired", body: api.CertificatesPost{Certificate: expired.B64()}, wantCode: 400, wantErr: "The provided certificate is expired"},
		{name: "fail/not yet valid", body: api.CertificatesPost{Certificate: future.B64()}, wantCode: 400,
			wantErr: "The provided certificate isn't valid yet"},
		{name: "fail/rsa 1024", body: api.CertificatesPost{Certificate: weak.B64()}, wantCode: 400, wantErr: "RSA key is too weak (minimum of 2048bit)"},
		{name: "fail/duplicate", body: api.CertificatesPost{Certificate: existing.B64(), Name: "again"}, wantCode: 409,
			wantErr: "Certificate already in trust store"},
		{name: "fail/duplicate as pem", body: api.CertificatesPost{Certificate: existing.PEM()}, wantCode: 409,
			wantErr: "Certificate already in trust store"},
		{name: "fail/duplicate of an entry added in this test", c: admin, body: api.CertificatesPost{Certificate: p384.B64()}, wantCode: 409,
			wantErr: "Certificate already in trust store"},
		{name: "fail/body over the route's 256 KiB", body: `{"name":"` + strings.Repeat("x", 256<<10) + `","certificate":"` + s.validCert(t, "big").B64() + `"}`,
			wantCode: 413, wantErr: "request body larger than 262144 bytes"},
		{name: "fail/projects without restricted", body: api.CertificatesPost{Certificate: s.validCert(t, "p").B64(), Projects: []string{"p1"}},
			wantCode: 400, wantErr: "Projects can only be specified for restricted certificates. Set restricted=true or remove projects"},
		{name: "fail/bogus type", body: api.CertificatesPost{Certificate: s.validCert(t, "b").B64(), Type: "bogus"}, wantCode: 400,
			wantErr: "Invalid certificate type"},
		{name: "fail/name with a slash", body: api.CertificatesPost{Certificate: s.validCert(t, "n").B64(), Name: "a/b"}, wantCode: 400,
			wantErr: `Certificate name must not start with "-" or contain "/"`},
		{name: "fail/name starting with a dash", body: api.CertificatesPost{Certificate: s.validCert(t, "n").B64(), Name: "-a"}, wantCode: 400,
			wantErr: `Certificate name must not start with "-" or contain "/"`},
		{name: "fail/password", body: `{"password":"hunter2"}`, wantCode: 501,
			wantErr: "Password authentication is no longer supported, please update your client"},
		{name: "fail/trusted caller without certificate", c: admin, body: api.CertificatesPost{Name: "me"}, wantCode: 400,
			wantErr: "Client is already trusted"},
		{name: "fail/restricted caller adds a certificate", c: restricted, body: api.CertificatesPost{Certificate: s.validCert(t, "r").B64()},
			wantCode: 403, wantErr: "not authorized"},
		{name: "fail/restricted caller asks for a token", c: restricted, body: api.CertificatesPost{Name: "t", Token: true},
			wantCode: 403, wantErr: "not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			rep := s.call(t, tc.c, "POST", "/1.0/certificates", tc.body)
			if tc.wantErr != "" {
				wantError(t, rep, tc.wantCode, tc.wantErr)
				s.unchanged(t, before)
				return
			}
			wantCode(t, rep, 201)
			if loc := rep.Header.Get("Location"); loc != "/1.0/certificates/"+tc.want.Fingerprint {
				t.Errorf("Location %q", loc)
			}
			if string(rep.Env.Metadata) != "null" {
				t.Errorf("metadata %s, want null", rep.Env.Metadata)
			}
			ps := payloads(t, s.since(t, before))
			if len(ps) != 1 {
				t.Fatalf("%d events, want 1", len(ps))
			}
			if diff := cmp.Diff(tc.want, ps[0]); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			got, rep := s.certificate(t, tc.want.Fingerprint)
			wantCode(t, rep, 200)
			want := api.Certificate{Name: tc.want.Name, Type: tc.want.Type, Restricted: tc.want.Restricted, Projects: tc.want.Projects,
				Certificate: tc.want.Certificate, Description: tc.want.Description, Fingerprint: tc.want.Fingerprint}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
		})
	}

	// A certificate without a CN added over TLS is named after the caller.
	noCN := s.validCert(t, "")
	wantCode(t, s.call(t, admin, "POST", "/1.0/certificates", api.CertificatesPost{Certificate: noCN.B64()}), 201)
	if got, _ := s.certificate(t, noCN.FP); got.Name != "127.0.0.1" {
		t.Errorf("name %q, want the client address 127.0.0.1", got.Name)
	}
}

// TestCertificateList checks both recursion levels show the same entries,
// and that filter= is accepted.
func TestCertificateList(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	var fps []string
	for _, name := range []string{"c", "a", "b"} {
		fps = append(fps, s.add(t, s.validCert(t, name), api.CertificatesPost{Name: name}))
	}
	// Sorted by name: a, b, c.
	order := []string{fps[1], fps[2], fps[0]}
	var urls []string
	for _, fp := range order {
		urls = append(urls, "/1.0/certificates/"+fp)
	}
	for _, tc := range []struct {
		name  string
		query string
		urls  bool
	}{
		{name: "ok/no recursion", query: "", urls: true},
		{name: "ok/recursion 0", query: "?recursion=0", urls: true},
		{name: "ok/empty filter", query: "?filter=", urls: true},
		{name: "ok/recursion 1", query: "?recursion=1"},
		{name: "ok/recursion 1 with empty filter", query: "?recursion=1&filter="},
		{name: "ok/recursion 2", query: "?recursion=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := s.call(t, nil, "GET", "/1.0/certificates"+tc.query, nil)
			wantCode(t, rep, 200)
			if tc.urls {
				var got []string
				rep.metadata(t, &got)
				if diff := cmp.Diff(urls, got); diff != "" {
					t.Errorf("URLs (-want +got):\n%s", diff)
				}
				return
			}
			var got []api.Certificate
			rep.metadata(t, &got)
			var gotFPs []string
			for _, c := range got {
				gotFPs = append(gotFPs, c.Fingerprint)
			}
			if diff := cmp.Diff(order, gotFPs); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
	// An empty store lists [], not null.
	empty := newStack(t)
	for _, q := range []string{"", "?recursion=1"} {
		if rep := empty.call(t, nil, "GET", "/1.0/certificates"+q, nil); string(rep.Env.Metadata) != "[]" {
			t.Errorf("empty list%s: %s", q, rep.Env.Metadata)
		}
	}
}

// prefixPair adds certificates until two share their first hex digit (at
// most 17 by the pigeonhole principle) and returns that digit.
func prefixPair(t *testing.T, s *stack) string {
	t.Helper()
	seen := map[byte]bool{}
	for i := range 17 {
		fp := s.add(t, s.validCert(t, "pp"+string(rune('a'+i))), api.CertificatesPost{})
		if seen[fp[0]] {
			return fp[:1]
		}
		seen[fp[0]] = true
	}
	t.Fatal("17 fingerprints with 17 distinct first digits")
	return ""
}

// TestCertificateLookup covers fingerprint prefixes on every method: a
// unique prefix works, an unknown one is 404, an ambiguous one an error.
func TestCertificateLookup(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	shared := prefixPair(t, s)
	target := s.validCert(t, "target")
	fp := s.add(t, target, api.CertificatesPost{})
	// The shortest prefix of fp no other entry shares.
	var unique string
	for n := 1; n <= 64 && unique == ""; n++ {
		rep := s.call(t, nil, "GET", "/1.0/certificates/"+fp[:n], nil)
		if rep.Code == 200 {
			unique = fp[:n]
		}
	}
	if unique == "" {
		t.Fatal("no unique prefix")
	}
	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     any
		wantCode int
		wantErr  string
	}{
		{name: "ok/get by full fingerprint", method: "GET", path: fp, wantCode: 200},
		{name: "ok/get by unique prefix", method: "GET", path: unique, wantCode: 200},
		{name: "ok/patch by unique prefix", method: "PATCH", path: unique, body: `{"description":"by prefix"}`, wantCode: 200},
		{name: "ok/put by unique prefix", method: "PUT", path: unique, body: api.CertificatePut{Name: "renamed", Type: "client"}, wantCode: 200},
		{name: "fail/unknown fingerprint", method: "GET", path: strings.Repeat("0", 63) + "g", wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/unknown full fingerprint", method: "GET", path: flip(fp), wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/not hex", method: "GET", path: "xyz", wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/ambiguous get", method: "GET", path: shared, wantCode: 400, wantErr: "More than one certificate matches"},
		{name: "fail/ambiguous patch", method: "PATCH", path: shared, body: `{"name":"x"}`, wantCode: 400, wantErr: "More than one certificate matches"},
		{name: "fail/ambiguous put", method: "PUT", path: shared, body: `{"name":"x"}`, wantCode: 400, wantErr: "More than one certificate matches"},
		{name: "fail/ambiguous delete", method: "DELETE", path: shared, wantCode: 400, wantErr: "More than one certificate matches"},
		{name: "fail/unknown patch", method: "PATCH", path: flip(fp), body: `{"name":"x"}`, wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/unknown put", method: "PUT", path: flip(fp), body: `{"name":"x"}`, wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/unknown delete", method: "DELETE", path: flip(fp), wantCode: 404, wantErr: "Certificate not found"},
		{name: "ok/delete by unique prefix", method: "DELETE", path: unique, wantCode: 200},
		{name: "fail/deleted", method: "GET", path: fp, wantCode: 404, wantErr: "Certificate not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			rep := s.call(t, nil, tc.method, "/1.0/certificates/"+tc.path, tc.body)
			if tc.wantErr != "" {
				wantError(t, rep, tc.wantCode, tc.wantErr)
				s.unchanged(t, before)
				return
			}
			wantCode(t, rep, tc.wantCode)
			if tc.method == "GET" {
				var c api.Certificate
				rep.metadata(t, &c)
				if c.Fingerprint != fp {
					t.Errorf("got entry %s, want %s", c.Fingerprint, fp)
				}
				if etag := rep.Header.Get("ETag"); etag != etagOf(t, c) {
					t.Errorf("ETag %q, want %q", etag, etagOf(t, c))
				}
				return
			}
			if string(rep.Env.Metadata) != "{}" {
				t.Errorf("metadata %s, want {}", rep.Env.Metadata)
			}
			if n := len(s.since(t, before)); n != 1 {
				t.Errorf("%d events, want 1", n)
			}
		})
	}
}

// flip returns fp with its last hex digit changed.
func flip(fp string) string {
	last := fp[len(fp)-1]
	if last == '0' {
		return fp[:len(fp)-1] + "1"
	}
	return fp[:len(fp)-1] + "0"
}

// TestCertificateEdit runs an admin's PUT, PATCH and DELETE on one entry in
// sequence, through its lifetime and re-keying.
func TestCertificateEdit(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	now := s.clock.Now()
	orig, next, other := s.validCert(t, "orig"), s.validCert(t, "next"), s.validCert(t, "other")
	fp := s.add(t, orig, api.CertificatesPost{Description: "first"})
	s.add(t, other, api.CertificatesPost{})
	expired := newCert(t, "p384", "expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	weak := newCert(t, "rsa1024", "weak", now.Add(-time.Hour), now.Add(time.Hour))
	origClient, nextClient := s.client(t, orig), s.client(t, next)

	cur := fp // the entry's fingerprint as the steps go
	var tag string
	for _, tc := range []struct {
		name     string
		method   string
		body     any
		ifMatch  func() string
		wantCode int
		wantErr  string
		want     *api.Certificate // the entry after a success
		noop     bool             // a success that records nothing
		check    func(t *testing.T)
	}{
		{name: "ok/patch renames", method: "PATCH", body: `{"name":"renamed"}`, wantCode: 200,
			want: &api.Certificate{Name: "renamed", Type: "client", Projects: []string{}, Description: "first"}},
		{name: "ok/patch with the right if-match", method: "PATCH", body: `{"description":"second"}`,
			ifMatch: func() string { _, rep := s.certificate(t, cur); tag = rep.Header.Get("ETag"); return tag }, wantCode: 200,
			want: &api.Certificate{Name: "renamed", Type: "client", Projects: []string{}, Description: "second"}},
		{name: "fail/stale if-match", method: "PATCH", body: `{"description":"third"}`, ifMatch: func() string { return tag },
			wantCode: 412, wantErr: "ETag doesn't match: ..."},
		{name: "fail/wrong if-match on put", method: "PUT", body: api.CertificatePut{Name: "x"}, ifMatch: func() string { return `"00"` },
			wantCode: 412, wantErr: "ETag doesn't match: ..."},
		{name: "ok/put restricts and clears what it omits", method: "PUT", body: api.CertificatePut{Name: "limited", Type: "client", Restricted: true,
			Projects: []string{"p1", "p2"}}, wantCode: 200,
			want: &api.Certificate{Name: "limited", Type: "client", Restricted: true, Projects: []string{"p1", "p2"}}},
		{name: "ok/patch lifts the restriction", method: "PATCH", body: `{"restricted":false,"projects":[]}`, wantCode: 200,
			want: &api.Certificate{Name: "limited", Type: "client", Projects: []string{}}},
		{name: "fail/type change", method: "PATCH", body: `{"type":"metrics"}`, wantCode: 400, wantErr: "The certificate type cannot be changed"},
		{name: "fail/type change on put", method: "PUT", body: api.CertificatePut{Name: "limited", Type: "server"}, wantCode: 400,
			wantErr: "The certificate type cannot be changed"},
		{name: "fail/bogus type", method: "PATCH", body: `{"type":"bogus"}`, wantCode: 400, wantErr: "Invalid certificate type"},
		{name: "fail/projects without restricted", method: "PATCH", body: `{"projects":["p1"]}`, wantCode: 400,
			wantErr: "Projects can only be specified for restricted certificates. Set restricted=true or remove projects"},
		{name: "fail/bad name", method: "PATCH", body: `{"name":"a/b"}`, wantCode: 400, wantErr: `Certificate name must not start with "-" or contain "/"`},
		{name: "fail/malformed json", method: "PATCH", body: `{"name":`, wantCode: 400, wantErr: "unexpected EOF"},
		{name: "fail/body over the route's 256 KiB", method: "PUT", body: `{"name":"` + strings.Repeat("x", 256<<10) + `"}`, wantCode: 413,
			wantErr: "request body larger than 262144 bytes"},
		{name: "fail/certificate not pem", method: "PATCH", body: api.CertificatePut{Name: "limited", Type: "client", Certificate: next.B64()}, wantCode: 400,
			wantErr: "Invalid PEM encoded certificate"},
		{name: "fail/certificate garbage pem", method: "PATCH",
			body: `{"certificate":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`, wantCode: 400,
			wantErr: "Invalid certificate material: ..."},
		{name: "fail/certificate expired", method: "PATCH", body: map[string]string{"certificate": expired.PEM()}, wantCode: 400,
			wantErr: "The provided certificate is expired"},
		{name: "fail/certificate weak", method: "PATCH", body: map[string]string{"certificate": weak.PEM()}, wantCode: 400,
			wantErr: "RSA key is too weak (minimum of 2048bit)"},
		{name: "fail/certificate of another entry", method: "PATCH", body: map[string]string{"certificate": other.PEM()}, wantCode: 409,
			wantErr: "Certificate already in trust store"},
		{name: "ok/same certificate changes nothing", method: "PATCH", body: map[string]string{"certificate": orig.PEM()}, wantCode: 200,
			want: &api.Certificate{Name: "limited", Type: "client", Projects: []string{}}, noop: true},
		{name: "ok/replacing the certificate re-keys the entry", method: "PATCH", body: map[string]string{"certificate": next.PEM()}, wantCode: 200,
			want: &api.Certificate{Name: "limited", Type: "client", Projects: []string{}},
			check: func(t *testing.T) {
				cur = next.FP
				wantError(t, s.call(t, nil, "GET", "/1.0/certificates/"+fp, nil), 404, "Certificate not found")
				wantError(t, s.call(t, origClient, "GET", "/1.0/certificates", nil), 403, "not authorized")
				wantCode(t, s.call(t, nextClient, "GET", "/1.0/certificates", nil), 200)
				if srv, _ := s.server(t, nextClient); srv.AuthUserName != next.FP {
					t.Errorf("auth_user_name %q, want %s", srv.AuthUserName, next.FP)
				}
			}},
		{name: "ok/delete", method: "DELETE", wantCode: 200,
			check: func(t *testing.T) {
				wantError(t, s.call(t, nil, "GET", "/1.0/certificates/"+cur, nil), 404, "Certificate not found")
				wantError(t, s.call(t, nextClient, "GET", "/1.0/certificates", nil), 403, "not authorized")
			}},
		{name: "fail/delete again", method: "DELETE", wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/patch deleted", method: "PATCH", body: `{"name":"x"}`, wantCode: 404, wantErr: "Certificate not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			var header []string
			if tc.ifMatch != nil {
				header = []string{"If-Match", tc.ifMatch()}
			}
			at := cur
			rep := s.call(t, nil, tc.method, "/1.0/certificates/"+at, tc.body, header...)
			if tc.wantErr != "" {
				wantError(t, rep, tc.wantCode, tc.wantErr)
				s.unchanged(t, before)
				return
			}
			wantCode(t, rep, tc.wantCode)
			if string(rep.Env.Metadata) != "{}" {
				t.Errorf("metadata %s, want {}", rep.Env.Metadata)
			}
			ps := payloads(t, s.since(t, before))
			if tc.noop {
				if len(ps) != 0 {
					t.Fatalf("%d events for an update that changes nothing", len(ps))
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("%d events, want 1", len(ps))
			}
			if tc.check != nil {
				tc.check(t)
			}
			switch tc.method {
			case "DELETE":
				if diff := cmp.Diff(&events.CertificateRemoved{Fingerprint: at, Name: "limited"}, ps[0]); diff != "" {
					t.Errorf("event (-want +got):\n%s", diff)
				}
			default:
				want := *tc.want
				want.Fingerprint = cur
				want.Certificate = map[bool]string{true: orig.PEM(), false: next.PEM()}[cur == fp]
				got, rep := s.certificate(t, cur)
				wantCode(t, rep, 200)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("entry (-want +got):\n%s", diff)
				}
				wantEv := &events.CertificateUpdated{Fingerprint: at, Name: want.Name, Restricted: want.Restricted,
					Projects: want.Projects, Description: want.Description, Certificate: want.Certificate}
				if at != cur {
					wantEv.NewFingerprint = cur
				}
				if diff := cmp.Diff(wantEv, ps[0]); diff != "" {
					t.Errorf("event (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestRestrictedClient checks what a restricted client may do: see and
// manage its own entry, replace its own certificate, and nothing else.
func TestRestrictedClient(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	mine, renewed, otherCert := s.validCert(t, "mine"), s.validCert(t, "renewed"), s.validCert(t, "other")
	fp := s.add(t, mine, api.CertificatesPost{Name: "mine", Restricted: true, Projects: []string{"p1", "p2"}})
	other := s.add(t, otherCert, api.CertificatesPost{Name: "other"})
	c := s.client(t, mine)

	before := s.lastSeq(t)
	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     any
		wantCode int
		wantErr  string
	}{
		{name: "fail/get another entry", method: "GET", path: "/1.0/certificates/" + other, wantCode: 403, wantErr: "not authorized"},
		{name: "fail/patch another entry", method: "PATCH", path: "/1.0/certificates/" + other, body: `{"name":"x"}`, wantCode: 403,
			wantErr: "Certificate cannot be changed"},
		{name: "fail/put another entry", method: "PUT", path: "/1.0/certificates/" + other, body: `{"name":"other"}`, wantCode: 403,
			wantErr: "Certificate cannot be changed"},
		{name: "fail/delete another entry", method: "DELETE", path: "/1.0/certificates/" + other, wantCode: 403,
			wantErr: "Certificate cannot be deleted"},
		{name: "fail/rename itself", method: "PATCH", path: "/1.0/certificates/" + fp, body: `{"name":"root"}`, wantCode: 403,
			wantErr: "Only the certificate can be changed"},
		{name: "fail/lift its restriction", method: "PATCH", path: "/1.0/certificates/" + fp, body: `{"restricted":false}`, wantCode: 403,
			wantErr: "Only the certificate can be changed"},
		{name: "fail/add a project", method: "PATCH", path: "/1.0/certificates/" + fp, body: `{"projects":["p1","p2","p3"]}`, wantCode: 403,
			wantErr: "Only the certificate can be changed"},
		{name: "fail/reorder its projects", method: "PATCH", path: "/1.0/certificates/" + fp, body: `{"projects":["p2","p1"]}`, wantCode: 403,
			wantErr: "Only the certificate can be changed"},
		{name: "fail/put drops its restriction", method: "PUT", path: "/1.0/certificates/" + fp, body: map[string]string{"type": "client", "certificate": renewed.PEM()},
			wantCode: 403, wantErr: "Only the certificate can be changed"},
		{name: "fail/change the type", method: "PATCH", path: "/1.0/certificates/" + fp, body: `{"type":"server"}`, wantCode: 400,
			wantErr: "The certificate type cannot be changed"},
		{name: "fail/put server config", method: "PUT", path: "/1.0", body: `{"config":{}}`, wantCode: 403, wantErr: "Certificate is restricted"},
		{name: "fail/patch server config", method: "PATCH", path: "/1.0", body: `{"config":{"user.a":"1"}}`, wantCode: 403,
			wantErr: "Certificate is restricted"},
		{name: "fail/add a certificate", method: "POST", path: "/1.0/certificates", body: api.CertificatesPost{Certificate: s.validCert(t, "x").B64()},
			wantCode: 403, wantErr: "not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, s.call(t, c, tc.method, tc.path, tc.body), tc.wantCode, tc.wantErr)
		})
	}
	s.unchanged(t, before)

	t.Run("ok/sees only itself", func(t *testing.T) {
		var urls []string
		s.call(t, c, "GET", "/1.0/certificates", nil).metadata(t, &urls)
		if diff := cmp.Diff([]string{"/1.0/certificates/" + fp}, urls); diff != "" {
			t.Errorf("recursion 0 (-want +got):\n%s", diff)
		}
		var objs []api.Certificate
		s.call(t, c, "GET", "/1.0/certificates?recursion=1&filter=", nil).metadata(t, &objs)
		if len(objs) != 1 || objs[0].Fingerprint != fp || objs[0].Name != "mine" || !objs[0].Restricted {
			t.Errorf("recursion 1: %+v", objs)
		}
		var own api.Certificate
		s.call(t, c, "GET", "/1.0/certificates/"+fp[:12], nil).metadata(t, &own)
		if own.Fingerprint != fp {
			t.Errorf("own entry: %+v", own)
		}
	})

	t.Run("ok/replaces its own certificate", func(t *testing.T) {
		before := s.lastSeq(t)
		rep := s.call(t, c, "PATCH", "/1.0/certificates/"+fp, map[string]any{"certificate": renewed.PEM(), "description": "ignored"})
		wantCode(t, rep, 200)
		if n := len(s.since(t, before)); n != 1 {
			t.Errorf("%d events, want 1", n)
		}
		got, rep := s.certificate(t, renewed.FP)
		wantCode(t, rep, 200)
		want := api.Certificate{Name: "mine", Type: "client", Restricted: true, Projects: []string{"p1", "p2"},
			Certificate: renewed.PEM(), Fingerprint: renewed.FP}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("entry (-want +got):\n%s", diff)
		}
		wantError(t, s.call(t, c, "GET", "/1.0/certificates", nil), 403, "not authorized")
	})

	t.Run("ok/deletes itself", func(t *testing.T) {
		rc := s.client(t, renewed)
		wantCode(t, s.call(t, rc, "GET", "/1.0/certificates", nil), 200)
		wantCode(t, s.call(t, rc, "DELETE", "/1.0/certificates/"+renewed.FP, nil), 200)
		// The very next request on the same connection is no longer trusted.
		wantError(t, s.call(t, rc, "GET", "/1.0/certificates", nil), 403, "not authorized")
		if srv, _ := s.server(t, rc); srv.Auth != "untrusted" {
			t.Errorf("auth %q after removal", srv.Auth)
		}
		if _, rep := s.certificate(t, other); rep.Code != 200 {
			t.Errorf("the other entry went too: %s", rep)
		}
	})
}

// TestMetricsCertificate checks a metrics certificate is no client: the
// trust store refuses it and /1.0 shows it the untrusted view.
func TestMetricsCertificate(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	m := s.validCert(t, "metrics")
	fp := s.add(t, m, api.CertificatesPost{Type: "metrics"})
	c := s.client(t, m)
	before := s.lastSeq(t)
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/1.0/certificates", nil},
		{"GET", "/1.0/certificates?recursion=1", nil},
		{"GET", "/1.0/certificates/" + fp, nil},
		{"PATCH", "/1.0/certificates/" + fp, `{"certificate":""}`},
		{"DELETE", "/1.0/certificates/" + fp, nil},
		{"PATCH", "/1.0", `{"config":{}}`},
		{"POST", "/1.0/certificates", api.CertificatesPost{Certificate: s.validCert(t, "x").B64()}},
	} {
		t.Run("fail/"+tc.method+" "+tc.path, func(t *testing.T) {
			wantError(t, s.call(t, c, tc.method, tc.path, tc.body), 403, "not authorized")
		})
	}
	s.unchanged(t, before)
	srv, _ := s.server(t, c)
	if srv.Auth != "untrusted" || srv.Environment != nil || srv.AuthUserName != "" || !srv.ClientCertificate {
		t.Errorf("metrics certificate's view of /1.0: %+v", srv)
	}
	// The one route a metrics certificate may use.
	resp, err := c.Get("https://" + s.host.addr + "/1.0/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("trustlog_trusted_certificates 1")) {
		t.Errorf("GET /1.0/metrics: %d %.200s", resp.StatusCode, body)
	}
}

// TestFailedEditLeavesEntry sends edits that fail after the body is
// decoded: neither the stream nor the entry served may change, whatever
// the body held.
func TestFailedEditLeavesEntry(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	mine := s.validCert(t, "mine")
	fp := s.add(t, mine, api.CertificatesPost{Name: "mine", Restricted: true, Projects: []string{"p1", "p2"}})
	want, _ := s.certificate(t, fp)
	c := s.client(t, mine)
	before := s.lastSeq(t)
	for _, tc := range []struct {
		name     string
		c        *http.Client
		body     string
		wantCode int
		wantErr  string
	}{
		{name: "fail/admin patch with a bad type", body: `{"projects":["x","y"],"type":"bogus"}`, wantCode: 400, wantErr: "Invalid certificate type"},
		{name: "fail/admin patch with a bad name", body: `{"projects":["y","x"],"name":"a/b"}`, wantCode: 400,
			wantErr: `Certificate name must not start with "-" or contain "/"`},
		{name: "fail/restricted patch reordering", c: c, body: `{"projects":["p2","p1"]}`, wantCode: 403, wantErr: "Only the certificate can be changed"},
		{name: "fail/restricted patch renaming", c: c, body: `{"projects":["q","r"],"name":"x"}`, wantCode: 403, wantErr: "Only the certificate can be changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, s.call(t, tc.c, "PATCH", "/1.0/certificates/"+fp, tc.body), tc.wantCode, tc.wantErr)
			got, _ := s.certificate(t, fp)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entry changed by a failed edit (-want +got):\n%s", diff)
			}
		})
	}
	s.unchanged(t, before)
}

// TestRemovalIsImmediate deletes a client's entry while it keeps its
// connection open: its very next request is untrusted.
func TestRemovalIsImmediate(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert, victim := s.validCert(t, "admin"), s.validCert(t, "victim")
	s.add(t, adminCert, adminReq())
	fp := s.add(t, victim, api.CertificatesPost{})
	vc := s.client(t, victim)
	for range 3 {
		wantCode(t, s.call(t, vc, "GET", "/1.0/certificates", nil), 200)
	}
	wantCode(t, s.call(t, s.client(t, adminCert), "DELETE", "/1.0/certificates/"+fp, nil), 200)
	wantError(t, s.call(t, vc, "GET", "/1.0/certificates", nil), 403, "not authorized")
	if srv, _ := s.server(t, vc); srv.Auth != "untrusted" {
		t.Errorf("auth %q right after removal", srv.Auth)
	}
	// Trusted again the moment it is re-added.
	s.add(t, victim, api.CertificatesPost{})
	wantCode(t, s.call(t, vc, "GET", "/1.0/certificates", nil), 200)
}

// TestValidityInTrustStore moves the injected clock around a trusted
// certificate's validity: outside it, the entry does not count.
func TestValidityInTrustStore(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	now := s.clock.Now()
	nb, na := now.Add(-time.Hour), now.Add(time.Hour)
	c := newCert(t, "p384", "dated", nb, na)
	s.add(t, c, api.CertificatesPost{})
	hc := s.client(t, c)
	for _, tc := range []struct {
		name        string
		at          time.Time
		wantTrusted bool
	}{
		{name: "ok/in date", at: now, wantTrusted: true},
		{name: "fail/expired", at: na.Add(time.Minute)},
		{name: "fail/not yet valid", at: nb.Add(-time.Minute)},
		{name: "ok/in date again", at: na.Add(-time.Minute), wantTrusted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.clock.Set(tc.at)
			rep := s.call(t, hc, "GET", "/1.0/certificates", nil)
			srv, _ := s.server(t, hc)
			if tc.wantTrusted {
				wantCode(t, rep, 200)
				if srv.Auth != "trusted" {
					t.Errorf("auth %q", srv.Auth)
				}
				return
			}
			wantError(t, rep, 403, "not authorized")
			if srv.Auth != "untrusted" {
				t.Errorf("auth %q", srv.Auth)
			}
		})
	}
	s.clock.Set(now)
	// The entry itself is still listed: only its use is refused.
	if _, rep := s.certificate(t, c.FP); rep.Code != 200 {
		t.Errorf("entry: %s", rep)
	}
}

// TestConcurrentAdds races admins adding certificates: different ones all
// land, the same one lands exactly once.
func TestConcurrentAdds(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert := s.validCert(t, "admin")
	s.add(t, adminCert, adminReq())
	admin := s.client(t, adminCert)
	const n = 6
	distinct := make([]*cert, n)
	for i := range distinct {
		distinct[i] = s.validCert(t, "d")
	}
	same := s.validCert(t, "same")
	codes := make(chan int, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		c := admin
		if i%2 == 0 {
			c = nil // the admin socket
		}
		wg.Go(func() { codes <- s.post(c, api.CertificatesPost{Certificate: distinct[i].B64()}) })
		wg.Go(func() { codes <- s.post(c, api.CertificatesPost{Certificate: same.B64()}) })
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if diff := cmp.Diff(map[int]int{201: n + 1, 409: n - 1}, count); diff != "" {
		t.Errorf("status counts (-want +got):\n%s", diff)
	}
	var all []api.Certificate
	s.call(t, nil, "GET", "/1.0/certificates?recursion=1", nil).metadata(t, &all)
	if len(all) != n+2 {
		t.Errorf("%d entries, want %d", len(all), n+2)
	}
	if !slices.ContainsFunc(all, func(c api.Certificate) bool { return c.Fingerprint == same.FP }) {
		t.Errorf("the raced certificate is missing")
	}
}

// post sends POST /1.0/certificates from any goroutine and returns the
// status, or -1 if the request failed.
func (s *stack) post(c *http.Client, body api.CertificatesPost) int {
	base := "https://" + s.host.addr
	if c == nil {
		c, base = s.admin, "http://unix.socket"
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return -1
	}
	resp, err := c.Post(base+"/1.0/certificates", "application/json", bytes.NewReader(raw))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
