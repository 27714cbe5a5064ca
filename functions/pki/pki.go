// Package pki manages PKI mode: the certificate authority that client
// certificates must be signed by, and the CA's certificate revocation list.
// Both are events, so a revocation reaches every instance without a
// restart. Routes live under /1.0/trustlog/pki.
package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Extension is the api_extensions entry of these routes.
const Extension = "trustlog_pki"

// PartSize is the largest number of revoked serials one event carries. An
// event also stays below the log's message size limit (CRLEventsUnder), so
// a list of long serials is split into more, smaller parts.
const PartSize = 20_000

// partReserve is the room left in a message for everything but the serials:
// the event's other fields, the envelope (ids, subject, actor, chain hash)
// and the NATS headers, together well under 2 KiB. It is halved for a
// message limit under 128 KiB.
const partReserve = 64 << 10

// CAInfo is the wire form of the CA.
type CAInfo struct {
	Certificate string `json:"certificate"`
	Fingerprint string `json:"fingerprint"`
}

// CRLInfo is the wire form of the revocation list in force.
type CRLInfo struct {
	IssuerFingerprint string    `json:"issuer_fingerprint"`
	Number            string    `json:"number"`
	ThisUpdate        time.Time `json:"this_update"`
	NextUpdate        time.Time `json:"next_update"`
	SHA256            string    `json:"sha256"`
	Total             int       `json:"total"`
	Stale             bool      `json:"stale"`
	Revoked           []string  `json:"revoked"`
}

// CAPut is the body of PUT /1.0/trustlog/pki/ca; an empty certificate turns
// PKI mode off.
type CAPut struct {
	Certificate string `json:"certificate"`
}

// CRLPut is the body of PUT /1.0/trustlog/pki/crl: PEM, or base64 of DER.
type CRLPut struct {
	CRL string `json:"crl"`
}

// MaxCRLBody is the largest body PUT /1.0/trustlog/pki/crl accepts. The
// API's usual limit (response.MaxBody, 1 MiB) is too small for a CRL: one
// of 100,000 serials is about 3.5 MB of DER, 4.7 MB in base64.
const MaxCRLBody = 32 << 20

// maxCABody caps PUT /1.0/trustlog/pki/ca: one PEM certificate.
const maxCABody = 256 << 10

// Handler serves the PKI routes.
type Handler struct {
	model     commit.ReadModel
	committer *commit.Committer
	now       func() time.Time
	log       *slog.Logger
}

// New returns a Handler.
func New(model commit.ReadModel, c *commit.Committer, now func() time.Time, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{model: model, committer: c, now: now, log: log}
}

// Routes returns the routes of the handler.
func (h *Handler) Routes() []gate.Route {
	return []gate.Route{
		{Method: "GET", Path: "/1.0/trustlog/pki/ca", Handler: http.HandlerFunc(h.getCA)},
		{Method: "PUT", Path: "/1.0/trustlog/pki/ca", Admin: true, MaxBody: maxCABody, Handler: http.HandlerFunc(h.putCA)},
		{Method: "GET", Path: "/1.0/trustlog/pki/crl", Handler: http.HandlerFunc(h.getCRL)},
		{Method: "PUT", Path: "/1.0/trustlog/pki/crl", Admin: true, MaxBody: MaxCRLBody, MaxInFlight: 1, Handler: http.HandlerFunc(h.putCRL)},
	}
}

func (h *Handler) getCA(w http.ResponseWriter, r *http.Request) {
	ca := h.model.Snapshot().CA()
	if ca == nil {
		response.Sync(w, CAInfo{})
		return
	}
	response.Sync(w, CAInfo{Certificate: ca.PEM, Fingerprint: ca.Fingerprint})
}

func (h *Handler) getCRL(w http.ResponseWriter, r *http.Request) {
	c := h.model.Snapshot().CRL()
	if c == nil {
		response.Fail(w, r, h.log, response.NotFound("No CRL is in force"))
		return
	}
	serials := c.Serials()
	slices.Sort(serials)
	response.Sync(w, CRLInfo{
		IssuerFingerprint: c.IssuerFingerprint, Number: c.Number, ThisUpdate: c.ThisUpdate,
		NextUpdate: c.NextUpdate, SHA256: c.SHA256, Total: c.Total, Stale: c.Stale(h.now()), Revoked: serials,
	})
}

func (h *Handler) putCA(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	var body CAPut
	err := response.DecodeJSON(w, r, &body)
	if err == nil && !id.Admin() {
		err = response.ErrForbidden
	}
	if err == nil {
		var ev events.CAChanged
		if ev, err = CAEvent(body.Certificate); err == nil {
			_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
				return ChangeCA(m, ev), nil
			})
		}
	}
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

func (h *Handler) putCRL(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	var body CRLPut
	r.Body = http.MaxBytesReader(w, r.Body, MaxCRLBody)
	err := decodeJSON(r, &body)
	if err == nil && !id.Admin() {
		err = response.ErrForbidden
	}
	if err == nil {
		var der []byte
		if der, err = DecodeCRL(body.CRL); err == nil {
			_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
				return CRLEventsUnder(m, der, h.committer.MaxPayload())
			})
		}
	}
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

// decodeJSON reads a body already bounded by http.MaxBytesReader: bad JSON
// is a 400 error, a body over the bound stays a *http.MaxBytesError (413).
func decodeJSON(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var answer *response.Error // a body that timed out, say
		if errors.As(err, &tooBig) || errors.As(err, &answer) {
			return err
		}
		return response.BadRequest(err.Error())
	}
	return nil
}

// CAEvent validates a PEM CA certificate ("" turns PKI mode off) and returns
// the event that sets it. A file without a certificate, or a certificate
// that is not a CA, is a 400 error.
func CAEvent(pemText string) (events.CAChanged, error) {
	if strings.TrimSpace(pemText) == "" {
		return events.CAChanged{}, nil
	}
	b, _ := pem.Decode([]byte(pemText))
	if b == nil || b.Type != "CERTIFICATE" {
		return events.CAChanged{}, response.BadRequest("Invalid CA: no PEM certificate found")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return events.CAChanged{}, response.BadRequest("Invalid CA: " + err.Error())
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return events.CAChanged{}, response.BadRequest("Invalid CA: the certificate is not a certificate authority")
	}
	sum := sha256.Sum256(c.Raw)
	return events.CAChanged{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})),
		Fingerprint: hex.EncodeToString(sum[:]),
	}, nil
}

// ChangeCA returns the events that put ev in force: none if it already is.
func ChangeCA(m *projections.Model, ev events.CAChanged) []events.Payload {
	cur := m.CA()
	if (cur == nil && ev.Fingerprint == "") || (cur != nil && cur.Fingerprint == ev.Fingerprint) {
		return nil
	}
	return []events.Payload{ev}
}

// DecodeCRL reads a CRL sent as PEM ("X509 CRL") or as base64 of DER, or
// given as raw DER bytes in a string (a file read by a host).
func DecodeCRL(s string) ([]byte, error) {
	if b, _ := pem.Decode([]byte(s)); b != nil {
		if b.Type != "X509 CRL" {
			return nil, response.BadRequest("Invalid CRL: PEM block is " + b.Type)
		}
		return b.Bytes, nil
	}
	if der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s)); err == nil {
		return der, nil
	}
	return []byte(s), nil
}

// CRLEvents is CRLEventsUnder for a log with the default NATS message
// limit (commit.DefaultMaxPayload, 1 MiB).
func CRLEvents(m *projections.Model, der []byte) ([]events.Payload, error) {
	return CRLEventsUnder(m, der, commit.DefaultMaxPayload)
}

// CRLEventsUnder validates a DER CRL against the model's CA and returns the
// events that put it in force, or none if it already is. The list must be
// signed by the CA and must not go backwards: its CRL number (or, without
// numbers, its thisUpdate) must be newer than the list in force. The
// serials are split into parts of at most PartSize, each small enough that
// its event, encoded and sent, stays below maxPayload bytes (the log's
// message limit, commit.Committer.MaxPayload).
func CRLEventsUnder(m *projections.Model, der []byte, maxPayload int64) ([]events.Payload, error) {
	ca := m.CA()
	if ca == nil || ca.Cert == nil {
		return nil, response.BadRequest("Invalid CRL: PKI mode is off (no CA is set)")
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, response.BadRequest("Invalid CRL: " + err.Error())
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, response.BadRequest("Invalid CRL: not signed by the CA")
	}
	sum := sha256.Sum256(der)
	digest := hex.EncodeToString(sum[:])
	number := ""
	if crl.Number != nil {
		number = crl.Number.String()
	}
	if cur := m.CRL(); cur != nil {
		if cur.SHA256 == digest {
			return nil, nil
		}
		if err := notBackwards(cur, crl, number); err != nil {
			return nil, err
		}
	}
	serials := make([]string, 0, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			serials = append(serials, e.SerialNumber.Text(16))
		}
	}
	parts, err := split(serials, maxPayload)
	if err != nil {
		return nil, err
	}
	out := []events.Payload{events.CRLUpdated{
		IssuerFingerprint: ca.Fingerprint, Number: number, ThisUpdate: crl.ThisUpdate.UTC(),
		NextUpdate: crl.NextUpdate.UTC(), SHA256: digest, Total: len(serials), Parts: len(parts),
		Revoked: parts[0],
	}}
	for i, part := range parts[1:] {
		out = append(out, events.CRLRevocations{
			IssuerFingerprint: ca.Fingerprint, SHA256: digest, Part: i + 2, Revoked: part,
		})
	}
	return out, nil
}

// split cuts serials into parts of at most PartSize serials whose JSON
// encoding (each a quoted hex string and a comma) stays within maxPayload
// less the reserve for the rest of the message. There is always at least
// one part, empty for an empty list.
func split(serials []string, maxPayload int64) ([][]string, error) {
	budget := int(maxPayload - min(partReserve, maxPayload/2))
	parts := [][]string{}
	lo, size := 0, 0
	for i, sn := range serials {
		n := len(sn) + 3
		if n > budget {
			return nil, response.BadRequest(fmt.Sprintf("Invalid CRL: serial number of %d hex digits is too long", len(sn)))
		}
		if i-lo == PartSize || size+n > budget {
			parts = append(parts, serials[lo:i])
			lo, size = i, 0
		}
		size += n
	}
	parts = append(parts, serials[lo:])
	if parts[0] == nil {
		parts[0] = []string{}
	}
	return parts, nil
}

func notBackwards(cur *projections.CRL, crl *x509.RevocationList, number string) error {
	if cur.Number != "" && crl.Number != nil {
		if have, ok := new(big.Int).SetString(cur.Number, 10); ok && crl.Number.Cmp(have) <= 0 {
			return response.BadRequest(fmt.Sprintf("Invalid CRL: CRL number %s is not newer than %s", number, cur.Number))
		}
		return nil
	}
	if !crl.ThisUpdate.After(cur.ThisUpdate) {
		return response.BadRequest("Invalid CRL: not newer than the list in force")
	}
	return nil
}

// ErrUntrusted is the refusal of a certificate that PKI mode could never
// trust, with LXD's message.
var ErrUntrusted = response.Forbidden("The certificate is not trusted by the CA or has been revoked")

// Check refuses, in PKI mode, a client certificate that is not signed by the
// CA or is revoked. Outside PKI mode it accepts everything.
func Check(m *projections.Model, c *x509.Certificate) error {
	ca := m.CA()
	if ca == nil {
		return nil
	}
	if ca.Cert == nil || c.CheckSignatureFrom(ca.Cert) != nil || m.Revoked(c.SerialNumber) {
		return ErrUntrusted
	}
	return nil
}
