package projections_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// certFactory derives distinct certificates from one self-signed P-384
// certificate by writing a counter into the last bytes of its 16-byte
// serial number, inside the DER. The signature no longer matches, which
// neither x509.ParseCertificate nor the model checks; every derived
// certificate has its own DER bytes, fingerprint and PEM text, of the size
// of a real one.
type certFactory struct {
	der []byte
	off int // offset of the serial's last 8 bytes in der
}

func newCertFactory(tb testing.TB) *certFactory {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial := make([]byte, 16) // as CAs and LXD/Incus clients do: 128 random bits
	rand.Read(serial)
	serial[0] = serial[0]&0x3f | 0x40 // positive, and encoded on exactly 16 bytes
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(serial),
		Subject:      pkix.Name{CommonName: "bench-client"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	// The serial is the TBSCertificate's first INTEGER: tag 02, length 16.
	at := bytes.Index(der, append([]byte{0x02, 0x10}, serial...))
	if at < 0 || bytes.Index(der[at+1:], append([]byte{0x02, 0x10}, serial...)) >= 0 {
		tb.Fatalf("serial not found exactly once in the DER")
	}
	return &certFactory{der: der, off: at + 2 + 16 - 8}
}

// make returns the i-th certificate's DER (a fresh slice) and PEM text.
func (f *certFactory) make(i uint64) ([]byte, string) {
	der := bytes.Clone(f.der)
	binary.BigEndian.PutUint64(der[f.off:], binary.BigEndian.Uint64(der[f.off:])^i)
	return der, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// memSink keeps the last model built by BenchmarkMemoryPerCertificate
// reachable when a heap profile is asked for, so that -memprofile (written
// after the benchmarks end) shows it in inuse_space.
var memSink *projections.Model

// BenchmarkMemoryPerCertificate measures the heap a model holds per trusted
// certificate: n CertificateTrusted records, each with a distinct real
// P-384 certificate (PEM kept by the model, as in a real trust store), are
// folded one at a time while they are generated, so that neither the
// records nor the decoder's garbage are counted. B/cert is the growth of
// the live heap (after two GCs) divided by n; PEM-B/cert is the average
// length of the certificate text, the part of it that is the PEM itself.
func BenchmarkMemoryPerCertificate(b *testing.B) {
	f := newCertFactory(b)
	profiling := false
	if fl := flag.Lookup("test.memprofile"); fl != nil && fl.Value.String() != "" {
		profiling = true
	}
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var perCert, pemPerCert float64
			for b.Loop() {
				memSink = nil
				var before, after runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&before)

				ch := newChain(b)
				bl := projections.NewBuilder(nil)
				var pemBytes int
				var first, last [32]byte
				for i := range n {
					der, pemText := f.make(uint64(i))
					sum := projections.Fingerprint(der)
					if i%(n/100) == 0 { // a sample of 100: the patched DER still parses, to the patched serial
						c, err := x509.ParseCertificate(der)
						if err != nil {
							b.Fatalf("certificate %d: %v", i, err)
						}
						if !bytes.Equal(c.Raw, der) || c.PublicKeyAlgorithm != x509.ECDSA {
							b.Fatalf("certificate %d: parsed to something else", i)
						}
					}
					if i == 0 {
						first = sum
					}
					last = sum
					pemBytes += len(pemText)
					rec := ch.next(&events.CertificateTrusted{
						Fingerprint: hex.EncodeToString(sum[:]),
						Name:        fmt.Sprintf("client-%d", i),
						Type:        events.CertificateTypeClient,
						Projects:    []string{},
						Certificate: pemText,
					}, nil)
					if err := bl.Apply(rec); err != nil {
						b.Fatal(err)
					}
				}
				m := bl.Model()
				bl = nil

				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&after)
				if m.NumCertificates() != n {
					b.Fatalf("model holds %d certificates, want %d", m.NumCertificates(), n)
				}
				for _, sum := range [][32]byte{first, last} {
					c, ok := m.Certificate(sum)
					if !ok {
						b.Fatalf("certificate %x missing", sum)
					}
					if x := c.X509(); x == nil || projections.Fingerprint(x.Raw) != sum || c.Fingerprint != hex.EncodeToString(sum[:]) {
						b.Fatalf("certificate %x: PEM does not hash to its fingerprint", sum)
					}
				}
				perCert = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
				pemPerCert = float64(pemBytes) / float64(n)
				if profiling {
					memSink = m
				}
				runtime.KeepAlive(m)
			}
			b.ReportMetric(perCert, "B/cert")
			b.ReportMetric(pemPerCert, "PEM-B/cert")
		})
	}
}
