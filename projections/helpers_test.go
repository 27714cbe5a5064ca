package projections_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
)

// testCert is a generated self-signed ECDSA P-384 client certificate.
type testCert struct {
	PEM      string
	FP       string // lowercase hex SHA-256 of the DER bytes
	Sum      [32]byte
	NotAfter time.Time
}

// newCert generates a certificate with common name cn.
func newCert(tb testing.TB, cn string) testCert {
	tb.Helper()
	c, err := genCert(cn)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func genCert(cn string) (testCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return testCert{}, err
	}
	notAfter := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return testCert{}, err
	}
	sum := sha256.Sum256(der)
	return testCert{
		PEM:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		FP:       hex.EncodeToString(sum[:]),
		Sum:      sum,
		NotAfter: notAfter,
	}, nil
}

// certs are three certificates shared by the tests of this package; they
// are only read.
var certs = sync.OnceValue(func() [3]testCert {
	var out [3]testCert
	for i := range out {
		c, err := genCert(fmt.Sprintf("client-%d", i))
		if err != nil {
			panic(err)
		}
		out[i] = c
	}
	return out
})

var baseTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// chain builds stored records in memory: consecutive sequences, each
// envelope's PrevHash the hash of the previous record's bytes.
type chain struct {
	tb   testing.TB
	seq  uint64
	prev string
	last events.Record // the last record next made
}

func newChain(tb testing.TB) *chain { return &chain{tb: tb} }

// next stores p as the next record; edit, if not nil, changes the envelope
// after its PrevHash is set and before it is encoded.
func (c *chain) next(p events.Payload, edit func(*events.Envelope)) events.Record {
	c.tb.Helper()
	c.seq++
	env, err := events.New(fmt.Sprintf("ev-%d", c.seq), "urn:trustlog:test",
		baseTime.Add(time.Duration(c.seq)*time.Second), events.Actor{Name: "tester", Method: "system"}, p)
	if err != nil {
		c.tb.Fatal(err)
	}
	env.PrevHash = c.prev
	if edit != nil {
		edit(&env)
	}
	raw, err := env.Marshal()
	if err != nil {
		c.tb.Fatal(err)
	}
	c.prev = events.Hash(raw)
	c.last = events.Record{Seq: c.seq, Raw: raw}
	return c.last
}

// at encodes p as a record at sequence seq without advancing the chain.
func (c *chain) at(seq uint64, p events.Payload) events.Record {
	c.tb.Helper()
	saved := *c
	c.seq = seq - 1
	rec := c.next(p, nil)
	*c = saved
	return rec
}

func trusted(c testCert, name string) *events.CertificateTrusted {
	return &events.CertificateTrusted{
		Fingerprint: c.FP,
		Name:        name,
		Type:        events.CertificateTypeClient,
		Projects:    []string{},
		Certificate: c.PEM,
	}
}
