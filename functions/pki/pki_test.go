package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fold builds a model from payloads, as the projector would.
func fold(tb testing.TB, payloads ...events.Payload) *projections.Model {
	tb.Helper()
	b := projections.NewBuilder(nil)
	prev := ""
	for i, p := range payloads {
		env, err := events.New(fmt.Sprintf("ev-%d", i+1), "/test", t0, events.Actor{Name: "test", Method: "unix"}, p)
		if err != nil {
			tb.Fatal(err)
		}
		env.PrevHash = prev
		raw, err := env.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		prev = events.Hash(raw)
		if err := b.Apply(events.Record{Seq: uint64(i + 1), Raw: raw}); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Model()
}

type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  string
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newCA(tb testing.TB, cn string) *testCA {
	tb.Helper()
	k := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{key: k, cert: c, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (ca *testCA) event(tb testing.TB) events.CAChanged {
	tb.Helper()
	ev, err := pki.CAEvent(ca.pem)
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

func (ca *testCA) issue(tb testing.TB, serial int64) *x509.Certificate {
	tb.Helper()
	k := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "client"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func (ca *testCA) crl(tb testing.TB, number int64, this time.Time, serials ...int64) []byte {
	tb.Helper()
	entries := make([]x509.RevocationListEntry, len(serials))
	for i, s := range serials {
		entries[i] = x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: this}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: this, NextUpdate: this.Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func selfSigned(tb testing.TB) *x509.Certificate {
	tb.Helper()
	k := newKey(tb)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// status returns the HTTP status of an API error, 0 if it is not one.
func status(err error) int {
	var e *response.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestCAEvent(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	sum := sha256.Sum256(ca.cert.Raw)
	fp := hex.EncodeToString(sum[:])
	leaf := selfSigned(t)
	noBC := func() string {
		k := newKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "no-bc"},
			NotBefore: t0, NotAfter: t0.Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		return pemOf("CERTIFICATE", der)
	}()
	tests := []struct {
		name string
		in   string
		want events.CAChanged
		err  string
	}{
		{"ok/CA", ca.pem, events.CAChanged{Certificate: ca.pem, Fingerprint: fp}, ""},
		{"ok/text around the PEM", "issuer: test\n" + ca.pem + "trailing\n", events.CAChanged{Certificate: ca.pem, Fingerprint: fp}, ""},
		{"ok/only the first block", ca.pem + pemOf("CERTIFICATE", leaf.Raw), events.CAChanged{Certificate: ca.pem, Fingerprint: fp}, ""},
		{"ok/empty turns PKI mode off", "", events.CAChanged{}, ""},
		{"ok/blank turns PKI mode off", " \n\t", events.CAChanged{}, ""},
		{"fail/no PEM", "hello", events.CAChanged{}, "Invalid CA: no PEM certificate found"},
		{"fail/key block", pemOf("PRIVATE KEY", []byte{1, 2}), events.CAChanged{}, "Invalid CA: no PEM certificate found"},
		{"fail/CRL block", pemOf("X509 CRL", ca.crl(t, 1, t0)), events.CAChanged{}, "Invalid CA: no PEM certificate found"},
		{"fail/truncated", ca.pem[:len(ca.pem)/2], events.CAChanged{}, "Invalid CA: no PEM certificate found"},
		{"fail/garbage DER", pemOf("CERTIFICATE", []byte("garbage")), events.CAChanged{}, "Invalid CA: x509:"},
		{"fail/leaf", pemOf("CERTIFICATE", leaf.Raw), events.CAChanged{}, "Invalid CA: the certificate is not a certificate authority"},
		{"fail/no basic constraints", noBC, events.CAChanged{}, "Invalid CA: the certificate is not a certificate authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.CAEvent(tt.in)
			if tt.err != "" {
				if status(err) != http.StatusBadRequest || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("CAEvent: %v (status %d), want 400 %q", err, status(err), tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CAEvent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangeCA(t *testing.T) {
	t.Parallel()
	a, b := newCA(t, "a"), newCA(t, "b")
	off := fold(t)
	onA := fold(t, a.event(t))
	tests := []struct {
		name  string
		model *projections.Model
		ev    events.CAChanged
		want  int
	}{
		{"ok/off to off is a no-op", off, events.CAChanged{}, 0},
		{"ok/off to a", off, a.event(t), 1},
		{"ok/a to a is a no-op", onA, a.event(t), 0},
		{"ok/a to b", onA, b.event(t), 1},
		{"ok/a to off", onA, events.CAChanged{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pki.ChangeCA(tt.model, tt.ev); len(got) != tt.want {
				t.Errorf("ChangeCA = %v, want %d events", got, tt.want)
			}
		})
	}
}

func TestDecodeCRL(t *testing.T) {
	t.Parallel()
	der := newCA(t, "ca").crl(t, 1, t0, 1, 2)
	tests := []struct {
		name string
		in   string
		want []byte
		err  string
	}{
		{"ok/PEM", pemOf("X509 CRL", der), der, ""},
		{"ok/PEM with text before", "crl of test\n" + pemOf("X509 CRL", der), der, ""},
		{"ok/base64 DER", base64.StdEncoding.EncodeToString(der), der, ""},
		{"ok/base64 DER with newline", base64.StdEncoding.EncodeToString(der) + "\n", der, ""},
		{"ok/raw DER", string(der), der, ""},
		{"fail/certificate PEM", pemOf("CERTIFICATE", []byte{1}), nil, "Invalid CRL: PEM block is CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.DecodeCRL(tt.in)
			if tt.err != "" {
				if status(err) != http.StatusBadRequest || err.Error() != tt.err {
					t.Fatalf("DecodeCRL: %v, want 400 %q", err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("DecodeCRL = %d bytes, %v; want the %d DER bytes", len(got), err, len(tt.want))
			}
		})
	}
}

func TestCRLEvents(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t, "ca"), newCA(t, "other")
	first := ca.crl(t, 5, t0, 10, 255)
	withCA := fold(t, ca.event(t))
	firstEvs, err := pki.CRLEvents(withCA, first)
	if err != nil {
		t.Fatal(err)
	}
	withCRL := fold(t, append([]events.Payload{ca.event(t)}, firstEvs...)...)
	sum := sha256.Sum256(first)

	t.Run("ok/first list", func(t *testing.T) {
		want := []events.Payload{events.CRLUpdated{
			IssuerFingerprint: ca.event(t).Fingerprint, Number: "5", ThisUpdate: t0, NextUpdate: t0.Add(24 * time.Hour),
			SHA256: hex.EncodeToString(sum[:]), Total: 2, Parts: 1, Revoked: []string{"a", "ff"},
		}}
		if diff := cmp.Diff(want, firstEvs); diff != "" {
			t.Errorf("CRLEvents (-want +got):\n%s", diff)
		}
		c := withCRL.CRL()
		if c == nil || !c.Revoked(big.NewInt(10)) || !c.Revoked(big.NewInt(255)) || c.Revoked(big.NewInt(11)) {
			t.Errorf("CRL in force after folding: %+v", c)
		}
	})

	tests := []struct {
		name  string
		model *projections.Model
		der   []byte
		n     int // events wanted
		err   string
	}{
		{"ok/same list again is a no-op", withCRL, first, 0, ""},
		{"ok/newer number", withCRL, ca.crl(t, 6, t0.Add(-time.Hour), 10), 1, ""},
		{"ok/much newer number", withCRL, ca.crl(t, 1<<40, t0), 1, ""},
		{"fail/same number", withCRL, ca.crl(t, 5, t0.Add(time.Hour)), 0, "Invalid CRL: CRL number 5 is not newer than 5"},
		{"fail/older number", withCRL, ca.crl(t, 4, t0.Add(time.Hour)), 0, "Invalid CRL: CRL number 4 is not newer than 5"},
		{"fail/PKI mode off", fold(t), first, 0, "Invalid CRL: PKI mode is off (no CA is set)"},
		{"fail/other CA", withCRL, other.crl(t, 9, t0), 0, "Invalid CRL: not signed by the CA"},
		{"fail/CA changed since", fold(t, ca.event(t), other.event(t)), ca.crl(t, 9, t0), 0, "Invalid CRL: not signed by the CA"},
		{"fail/malformed", withCA, []byte("garbage"), 0, "Invalid CRL: x509:"},
		{"fail/truncated", withCA, first[:len(first)-5], 0, "Invalid CRL: x509:"},
		{"fail/empty", withCA, nil, 0, "Invalid CRL: x509:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.CRLEvents(tt.model, tt.der)
			if tt.err != "" {
				if status(err) != http.StatusBadRequest || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("CRLEvents: %v, want 400 %q", err, tt.err)
				}
				return
			}
			if err != nil || len(got) != tt.n {
				t.Errorf("CRLEvents = %d events, %v; want %d", len(got), err, tt.n)
			}
		})
	}
}

// TestCRLEventsParts checks how a list is split into events of at most
// pki.PartSize serials, and that folding them puts the whole list in force.
func TestCRLEventsParts(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	serials := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(i + 1)
		}
		return out
	}
	tests := []struct {
		name  string
		n     int
		parts []int // serials per event
	}{
		{"ok/empty", 0, []int{0}},
		{"ok/one", 1, []int{1}},
		{"ok/one full part", pki.PartSize, []int{pki.PartSize}},
		{"ok/one more", pki.PartSize + 1, []int{pki.PartSize, 1}},
		{"ok/100k", 100_000, []int{pki.PartSize, pki.PartSize, pki.PartSize, pki.PartSize, pki.PartSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der := ca.crl(t, 1, t0, serials(tt.n)...)
			evs, err := pki.CRLEvents(fold(t, ca.event(t)), der)
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			for i, ev := range evs {
				switch e := ev.(type) {
				case events.CRLUpdated:
					if i != 0 || e.Parts != len(tt.parts) || e.Total != tt.n || e.Revoked == nil {
						t.Errorf("event %d: CRLUpdated parts %d total %d", i, e.Parts, e.Total)
					}
					sizes = append(sizes, len(e.Revoked))
				case events.CRLRevocations:
					if e.Part != i+1 {
						t.Errorf("event %d: part %d", i, e.Part)
					}
					sizes = append(sizes, len(e.Revoked))
				default:
					t.Fatalf("event %d: %T", i, ev)
				}
			}
			if !cmp.Equal(sizes, tt.parts) {
				t.Errorf("serials per event %v, want %v", sizes, tt.parts)
			}
			m := fold(t, append([]events.Payload{ca.event(t)}, evs...)...)
			c := m.CRL()
			if c == nil || c.Total != tt.n || len(c.Serials()) != tt.n {
				t.Fatalf("CRL in force: %+v", c)
			}
			if tt.n > 0 && (!m.Revoked(big.NewInt(1)) || !m.Revoked(big.NewInt(int64(tt.n)))) {
				t.Error("first or last serial not revoked")
			}
			if m.Revoked(big.NewInt(int64(tt.n + 1))) {
				t.Error("a serial not on the list is revoked")
			}
			// Without its last part the list is not in force.
			if len(evs) > 1 {
				partial := fold(t, append([]events.Payload{ca.event(t)}, evs[:len(evs)-1]...)...)
				if partial.CRL() != nil {
					t.Error("a list missing a part is in force")
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t, "ca"), newCA(t, "ca") // same name, other key
	good, revoked, foreign, leaf := ca.issue(t, 1), ca.issue(t, 2), other.issue(t, 3), selfSigned(t)
	evs, err := pki.CRLEvents(fold(t, ca.event(t)), ca.crl(t, 1, t0, 2))
	if err != nil {
		t.Fatal(err)
	}
	pkiOn := fold(t, append([]events.Payload{ca.event(t)}, evs...)...)
	off := fold(t)
	tests := []struct {
		name  string
		model *projections.Model
		cert  *x509.Certificate
		ok    bool
	}{
		{"ok/PKI mode off, self-signed", off, leaf, true},
		{"ok/PKI mode off, foreign", off, foreign, true},
		{"ok/CA-signed", pkiOn, good, true},
		{"fail/revoked", pkiOn, revoked, false},
		{"fail/self-signed", pkiOn, leaf, false},
		{"fail/other CA with the same name", pkiOn, foreign, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.Check(tt.model, tt.cert)
			if tt.ok != (err == nil) {
				t.Fatalf("Check = %v, want ok %v", err, tt.ok)
			}
			if err != nil && (status(err) != http.StatusForbidden || err.Error() != "The certificate is not trusted by the CA or has been revoked") {
				t.Errorf("Check = %v (%d), want LXD's 403", err, status(err))
			}
		})
	}
}

// handlerEnv is the PKI handler behind the gate on a real JetStream.
type handlerEnv struct {
	proj *projections.Projector
	h    http.Handler
}

func newHandlerEnv(t *testing.T) *handlerEnv {
	t.Helper()
	st, _ := natstest.OpenStore(t)
	proj := projections.NewProjector(st, projections.ProjectorConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sync, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := proj.Sync(sync); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return t0 }
	c := &commit.Committer{Model: proj, Log: st, Now: now, NewID: uuid.NewString, Source: "/test"}
	h := gate.New(gate.Config{Authenticator: authn.New(proj, now)}, pki.New(proj, c, now, nil).Routes()...)
	return &handlerEnv{proj: proj, h: h}
}

// put sends a PUT as the local admin (the unix socket) and returns the
// status and error message.
func (e *handlerEnv) put(t *testing.T, path string, body []byte) (int, string) {
	t.Helper()
	r := httptest.NewRequest("PUT", path, bytes.NewReader(body))
	r = r.WithContext(authn.WithLocalUser(r.Context(), "root"))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var env struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	return w.Code, env.Error
}

// TestPutCRLBodyLimit: a CRL body may exceed the API's usual 1 MiB (a
// 100,000-serial list is several MB) up to pki.MaxCRLBody; beyond it is a
// 413 and nothing is appended. The CA route keeps the usual limit.
func TestPutCRLBodyLimit(t *testing.T) {
	t.Parallel()
	e := newHandlerEnv(t)
	ca := newCA(t, "ca")
	caBody, _ := json.Marshal(pki.CAPut{Certificate: ca.pem})
	if code, msg := e.put(t, "/1.0/trustlog/pki/ca", caBody); code != 200 {
		t.Fatalf("PUT ca: %d %s", code, msg)
	}
	serials := make([]int64, 60_000)
	for i := range serials {
		serials[i] = int64(1<<62) + int64(i)
	}
	der := ca.crl(t, 1, t0, serials...)
	body, _ := json.Marshal(pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)})
	if len(body) <= response.MaxBody {
		t.Fatalf("test CRL body is only %d bytes", len(body))
	}
	seq := e.proj.Snapshot().Seq()
	tests := []struct {
		name string
		path string
		body []byte
		code int
	}{
		{"fail/over MaxCRLBody", "/1.0/trustlog/pki/crl", append(append([]byte(`{"crl":"`), bytes.Repeat([]byte("A"), pki.MaxCRLBody)...), `"}`...), http.StatusRequestEntityTooLarge},
		{"fail/CA over MaxBody", "/1.0/trustlog/pki/ca", append(append([]byte(`{"certificate":"`), bytes.Repeat([]byte("A"), response.MaxBody)...), `"}`...), http.StatusRequestEntityTooLarge},
		{"fail/not JSON", "/1.0/trustlog/pki/crl", []byte(`{"crl":`), http.StatusBadRequest},
		{"ok/over 1 MiB", "/1.0/trustlog/pki/crl", body, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := e.put(t, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("PUT %s of %d bytes: %d %s, want %d", tt.path, len(tt.body), code, msg, tt.code)
			}
			if code != 200 && e.proj.Snapshot().Seq() != seq {
				t.Errorf("a refused PUT appended events")
			}
		})
	}
	if c := e.proj.Snapshot().CRL(); c == nil || c.Total != len(serials) {
		t.Errorf("CRL in force: %+v", c)
	}
}
