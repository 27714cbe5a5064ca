package daemon_test

// The authorization matrix of the PKI issue: every route of the API against
// every kind of caller, on one PKI-mode trustlogd with
// core.trust_ca_certificates on, over real TLS 1.3. Expected values follow
// the spec (§1.2 the gate, §1.5–1.9 the routes, §5 PKI mode, §9 restricted
// and metrics certificates, LXD semantics where the projects differ).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/pki"
)

// authzMatrix is the expected status of each route (row) for each caller
// (column):
//
//   - untrusted: a self-signed certificate the server does not know;
//   - admin: a CA-signed, unrestricted client entry;
//   - restricted: a CA-signed client entry restricted to project p1;
//   - metrics: a CA-signed entry of type metrics;
//   - revoked: a CA-signed client entry whose serial is on the CRL;
//   - ca-trusted: a CA-signed certificate with no entry, trusted by
//     core.trust_ca_certificates (an admin, method pki);
//   - expired: a CA-signed client entry past its notAfter.
//
// {fp} is another client's entry, created afresh for each request; {own}
// is the caller's own entry; {id} a fresh trust token under
// /1.0/operations and a fresh pending TLS identity under
// /1.0/auth/identities. Every route trustlogd serves has a row
// (TestAuthorizationMatrixCoversEveryRoute).
const authzMatrix = `
route                           untrusted admin restricted metrics revoked ca-trusted expired
GET /                           200       200   200        200     200     200        200
GET /1.0                        200       200   200        200     200     200        200
PUT /1.0                        403       200   403        403     403     200        403
PATCH /1.0                      403       200   403        403     403     200        403
GET /1.0/certificates           403       200   200        403     403     200        403
POST /1.0/certificates          403       201   403        403     403     201        403
GET /1.0/certificates/{fp}      403       200   403        403     403     200        403
PUT /1.0/certificates/{fp}      403       200   403        403     403     200        403
PATCH /1.0/certificates/{fp}    403       200   403        403     403     200        403
DELETE /1.0/certificates/{fp}   403       200   403        403     403     200        403
GET /1.0/certificates/{own}     403       200   200        403     403     404        403
PUT /1.0/certificates/{own}     403       200   200        403     403     404        403
PATCH /1.0/certificates/{own}   403       200   200        403     403     404        403
DELETE /1.0/certificates/{own}  403       200   200        403     403     404        403
GET /1.0/operations             403       200   200        403     403     200        403
GET /1.0/operations/{id}        403       200   404        403     403     200        403
DELETE /1.0/operations/{id}     403       200   403        403     403     200        403
GET /1.0/trustlog/pki/ca        403       200   200        403     403     200        403
PUT /1.0/trustlog/pki/ca        403       200   403        403     403     200        403
GET /1.0/trustlog/pki/crl       403       200   200        403     403     200        403
PUT /1.0/trustlog/pki/crl       403       200   403        403     403     200        403
GET /1.0/metrics                403       200   200        200     403     200        403
GET /1.0/                       200       200   200        200     200     200        200
GET /1.0/metadata/configuration 200       200   200        200     200     200        200
GET /.well-known/acme-challenge/{token} 404 404 404      404     404     404        404
POST /1.0/trustlog/acme/renew   403       400   403        403     403     400        403
GET /1.0/events                 403       400   400        403     403     400        403
GET /1.0/trustlog/events        403       200   200        403     403     200        403
GET /1.0/trustlog/audit/verify  403       200   403        403     403     200        403
GET /1.0/trustlog/audit/history 403       200   403        403     403     200        403
GET /1.0/trustlog/audit/trust   403       200   403        403     403     200        403
GET /1.0/trustlog/audit/state   403       200   403        403     403     200        403
GET /1.0/auth/identities        403       200   403        403     403     200        403
GET /1.0/auth/identities/current 403      200   200        403     403     200        403
GET /1.0/auth/identities/{method} 403     200   403        403     403     200        403
POST /1.0/auth/identities/tls   403       201   403        403     403     201        403
POST /1.0/auth/identities/oidc  403       201   403        403     403     201        403
GET /1.0/auth/identities/{method}/{id} 403 200  404        403     403     200        403
PUT /1.0/auth/identities/{method}/{id} 403 200  403        403     403     200        403
PATCH /1.0/auth/identities/{method}/{id} 403 200 403       403     403     200        403
DELETE /1.0/auth/identities/{method}/{id} 403 200 403      403     403     200        403
`

// matrixPattern is the route pattern a matrix row stands for: its
// placeholders ({fp}, {own}, {id}, …) and the mux's wildcards compared
// alike, and "/{$}" as "/".
func matrixPattern(route string) string {
	route = strings.ReplaceAll(route, "{$}", "")
	var b strings.Builder
	for {
		i := strings.IndexByte(route, '{')
		j := strings.IndexByte(route, '}')
		if i < 0 || j < i {
			b.WriteString(route)
			return b.String()
		}
		b.WriteString(route[:i] + "{}")
		route = route[j+1:]
	}
}

// TestAuthorizationMatrixCoversEveryRoute: every route trustlogd serves has
// a row in the matrix, and every row names a route it serves, so a route
// added without deciding who may call it fails here.
func TestAuthorizationMatrixCoversEveryRoute(t *testing.T) {
	t.Parallel()
	s := startPKI(t, t.TempDir(), newPKIClock())
	rows := map[string]bool{}
	for _, cell := range parseAuthzMatrix(t) {
		rows[matrixPattern(cell.route)] = true
	}
	served := map[string]bool{}
	for _, rt := range s.d.Service().Routes() {
		p := matrixPattern(rt.Method + " " + rt.Path)
		served[p] = true
		if !rows[p] {
			t.Errorf("route %s %s has no row in the authorization matrix", rt.Method, rt.Path)
		}
	}
	for p := range rows {
		if !served[p] {
			t.Errorf("matrix row %s names no route trustlogd serves", p)
		}
	}
}

// authzCell is one cell of the matrix.
type authzCell struct {
	method, route, who string
	want               int
}

// parseAuthzMatrix reads authzMatrix into cells, row by row.
func parseAuthzMatrix(t *testing.T) []authzCell {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(authzMatrix), "\n")
	header := strings.Fields(lines[0])[1:]
	if len(header) != len(authzAuth) {
		t.Fatalf("matrix header %v does not match the callers", header)
	}
	var cells []authzCell
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 2+len(header) {
			t.Fatalf("matrix row %q has %d fields", line, len(f))
		}
		for i, who := range header {
			code, err := strconv.Atoi(f[2+i])
			if err != nil {
				t.Fatalf("matrix row %q: %v", line, err)
			}
			cells = append(cells, authzCell{method: f[0], route: f[0] + " " + f[1], who: who, want: code})
		}
	}
	return cells
}

// authzAuth is what GET /1.0 reports as auth for each caller.
var authzAuth = map[string]string{
	"untrusted": "untrusted", "admin": "trusted", "restricted": "trusted", "metrics": "untrusted",
	"revoked": "untrusted", "ca-trusted": "trusted", "expired": "untrusted",
}

// authzCaller is one column: its certificate, client and entry.
type authzCaller struct {
	name  string
	cert  *pkiCert
	c     *http.Client
	entry *api.CertificatesPost // nil: no trust-store entry
}

// TestAuthorizationMatrix runs every cell of authzMatrix as a subtest:
// status, the error envelope of refusals, auth of GET /1.0, and that no
// refused request appended anything.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(t, "matrix-ca", now)
	s.setCA(t, ca.PEM)
	s.setConfig(t, "core.trust_ca_certificates", "true", "user.matrix", "start")

	callers := map[string]*authzCaller{
		"untrusted":  {cert: selfSigned(t, "untrusted", now.Add(-time.Hour), now.Add(365*24*time.Hour))},
		"admin":      {cert: ca.client(t, "admin", now), entry: &api.CertificatesPost{Name: "admin"}},
		"restricted": {cert: ca.client(t, "restricted", now), entry: &api.CertificatesPost{Name: "restricted", Restricted: true, Projects: []string{"p1"}}},
		"metrics":    {cert: ca.client(t, "metrics", now), entry: &api.CertificatesPost{Name: "metrics", Type: "metrics"}},
		"revoked":    {cert: ca.client(t, "revoked", now), entry: &api.CertificatesPost{Name: "revoked"}},
		"ca-trusted": {cert: ca.client(t, "ca-trusted", now)},
		"expired":    {cert: ca.issue(t, "expired", now.Add(-time.Hour), now.Add(time.Hour)), entry: &api.CertificatesPost{Name: "expired"}},
	}
	for name, c := range callers {
		c.name = name
		c.c = s.client(t, c.cert)
		if c.entry != nil {
			s.trust(t, c.cert, *c.entry)
		}
	}
	crlNumber := int64(1)
	revokedSerial := callers["revoked"].cert.X509.SerialNumber
	s.setCRL(t, ca.crl(t, crlNumber, now, now.Add(24*time.Hour), revokedSerial))
	// The expired certificate was valid when it was added; it is not now.
	clock.Advance(2 * time.Hour)

	// ensureEntries puts back the entries a previous cell deleted
	// (DELETE {own} by an admin or a restricted client).
	ensureEntries := func(t *testing.T) {
		t.Helper()
		for _, c := range callers {
			if c.entry != nil && s.call(t, "GET", "/1.0/certificates/"+c.cert.FP, nil).Code == http.StatusNotFound {
				s.trust(t, c.cert, *c.entry)
			}
		}
	}
	serial := 0
	// newTarget adds another client's entry as the admin.
	newTarget := func(t *testing.T) *pkiCert {
		t.Helper()
		serial++
		c := ca.client(t, fmt.Sprintf("target-%d", serial), clock.Now())
		s.trust(t, c, api.CertificatesPost{Name: fmt.Sprintf("target-%d", serial)})
		return c
	}
	// newIdentity makes a pending TLS identity as the admin and returns its name.
	newIdentity := func(t *testing.T) string {
		t.Helper()
		serial++
		name := fmt.Sprintf("identity-%d", serial)
		s.mustCall(t, http.StatusCreated, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: name, Token: true})
		return name
	}
	// prepare returns the path and body of one request of route by caller,
	// creating what it needs first.
	prepare := func(t *testing.T, route string, caller *authzCaller) (string, any) {
		t.Helper()
		_, path, _ := strings.Cut(route, " ")
		switch route {
		case "PUT /1.0":
			cfg := map[string]string{}
			var srv api.Server
			if err := json.Unmarshal(s.mustCall(t, 200, "GET", "/1.0", nil).Env.Metadata, &srv); err != nil {
				t.Fatal(err)
			}
			for k, v := range srv.Config {
				cfg[k] = v
			}
			cfg["user.matrix"] = "put-by-" + caller.name
			return path, api.ServerPut{Config: cfg}
		case "PATCH /1.0":
			return path, api.ServerPut{Config: map[string]string{"user.matrix": "patch-by-" + caller.name}}
		case "POST /1.0/certificates":
			fresh := ca.client(t, "posted-by-"+caller.name, clock.Now())
			return path, api.CertificatesPost{Name: "posted-by-" + caller.name, Certificate: base64.StdEncoding.EncodeToString(fresh.X509.Raw)}
		case "GET /1.0/certificates/{fp}", "DELETE /1.0/certificates/{fp}":
			return "/1.0/certificates/" + newTarget(t).FP, nil
		case "PUT /1.0/certificates/{fp}":
			return "/1.0/certificates/" + newTarget(t).FP, api.CertificatePut{Name: "renamed-by-" + caller.name, Type: "client", Projects: []string{}}
		case "PATCH /1.0/certificates/{fp}":
			return "/1.0/certificates/" + newTarget(t).FP, map[string]any{"description": "patched by " + caller.name}
		case "GET /1.0/certificates/{own}", "DELETE /1.0/certificates/{own}":
			return "/1.0/certificates/" + caller.cert.FP, nil
		case "PUT /1.0/certificates/{own}":
			put := api.CertificatePut{Name: caller.name, Type: "client", Projects: []string{}}
			if caller.entry != nil {
				put = api.CertificatePut{Name: caller.entry.Name, Type: caller.entry.Type, Restricted: caller.entry.Restricted, Projects: caller.entry.Projects}
			}
			if put.Type == "" {
				put.Type = "client"
			}
			if put.Projects == nil {
				put.Projects = []string{}
			}
			return "/1.0/certificates/" + caller.cert.FP, put
		case "PATCH /1.0/certificates/{own}":
			return "/1.0/certificates/" + caller.cert.FP, map[string]any{"description": "own, patched by " + caller.name}
		case "GET /1.0/operations/{id}", "DELETE /1.0/operations/{id}":
			id, _ := s.issueToken(t, "token-for-"+caller.name)
			return "/1.0/operations/" + id, nil
		case "PUT /1.0/trustlog/pki/ca":
			return path, pki.CAPut{Certificate: ca.PEM}
		case "GET /1.0/trustlog/audit/history":
			return path + "?subject=" + caller.cert.FP, nil
		case "GET /1.0/trustlog/audit/trust":
			return path + "?at=1", nil
		case "GET /1.0/auth/identities/{method}":
			return "/1.0/auth/identities/tls", nil
		case "POST /1.0/auth/identities/tls":
			serial++
			return path, api.IdentitiesTLSPost{Name: fmt.Sprintf("ident-%d-by-%s", serial, caller.name), Token: true}
		case "POST /1.0/auth/identities/oidc":
			serial++
			return path, api.IdentitiesTLSPost{Name: fmt.Sprintf("user%d-%s@example.com", serial, caller.name)}
		case "GET /1.0/auth/identities/{method}/{id}", "DELETE /1.0/auth/identities/{method}/{id}":
			return "/1.0/auth/identities/tls/" + newIdentity(t), nil
		case "PUT /1.0/auth/identities/{method}/{id}", "PATCH /1.0/auth/identities/{method}/{id}":
			return "/1.0/auth/identities/tls/" + newIdentity(t), api.IdentityPut{Access: "restricted", Projects: []string{"p1"}}
		case "PUT /1.0/trustlog/pki/crl":
			crlNumber++
			at := clock.Now()
			der := ca.crl(t, crlNumber, at, at.Add(24*time.Hour), revokedSerial)
			return path, pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)}
		}
		return path, nil
	}

	for _, cell := range parseAuthzMatrix(t) {
		kind := "ok"
		if cell.want >= 400 {
			kind = "fail"
		}
		t.Run(kind+"/"+cell.route+"/"+cell.who, func(t *testing.T) {
			caller, ok := callers[cell.who]
			if !ok {
				t.Fatalf("no caller %q", cell.who)
			}
			ensureEntries(t)
			path, body := prepare(t, cell.route, caller)
			before := s.lastSeq(t)
			var rep pkiReply
			if cell.route == "GET /1.0/trustlog/events" && cell.want == http.StatusOK {
				// A stream that does not end: its status is the answer.
				rep = streamStatus(t, caller.c, "https://"+s.d.HTTPSAddr()+path)
			} else {
				rep = s.over(t, caller.c, cell.method, path, body)
			}
			if rep.Code != cell.want {
				t.Fatalf("%s %s as %s: %s, want %d", cell.method, path, cell.who, rep, cell.want)
			}
			if cell.want >= 400 {
				if rep.Env.Type != api.TypeError || rep.Env.ErrorCode != cell.want {
					t.Errorf("refusal not in the error envelope: %s", rep)
				}
				if after := s.lastSeq(t); after != before {
					t.Errorf("a refused request appended %v", s.types(t, before+1))
				}
			}
			// Every admitted write is recorded, but those that change nothing:
			// setting the CA in force again, a PUT of an entry's own current
			// values, and a restricted client's PATCH of its own entry (it may
			// change only the certificate, which the matrix leaves as it is).
			noop := cell.route == "PUT /1.0/trustlog/pki/ca" || cell.route == "PUT /1.0/certificates/{own}" ||
				(cell.who == "restricted" && cell.route == "PATCH /1.0/certificates/{own}")
			if cell.want < 400 && cell.method != "GET" && !noop {
				if after := s.lastSeq(t); after == before {
					t.Errorf("an admitted %s appended nothing", cell.route)
				}
			}
			if cell.route == "GET /1.0" {
				var srv api.Server
				if err := json.Unmarshal(rep.Env.Metadata, &srv); err != nil {
					t.Fatal(err)
				}
				if srv.Auth != authzAuth[cell.who] {
					t.Errorf("GET /1.0 as %s: auth %q, want %q", cell.who, srv.Auth, authzAuth[cell.who])
				}
			}
		})
	}
}

// streamStatus opens a server-sent event stream and returns its status,
// without waiting for an end that never comes.
func streamStatus(t *testing.T, c *http.Client, url string) pkiReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return pkiReply{Code: resp.StatusCode, Header: resp.Header}
}
