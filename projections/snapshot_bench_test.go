package projections_test

import (
	"testing"

	"github.com/trustlog/trustlog/projections"
)

// BenchmarkSnapshot measures encoding and decoding the snapshot of a model
// holding 1,000,000 trusted certificates without certificate text (the
// trust store of the 1M-certificate cold start), and 100,000 with a P-384
// certificate's PEM each (a real trust store of that size).
func BenchmarkSnapshot(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
		pem  string
	}{
		{"1M-no-pem", 1_000_000, ""},
		{"100k-pem", 100_000, newCert(b, "snapshot").PEM},
	} {
		b.Run(bc.name, func(b *testing.B) {
			recs, _ := trustedRecords(b, bc.n, bc.pem)
			m := foldBatched(b, recs)
			recs = nil
			raw, err := projections.EncodeSnapshot(m)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("encode", func(b *testing.B) {
				for b.Loop() {
					if _, err := projections.EncodeSnapshot(m); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(raw)), "snapshot-B")
			})
			b.Run("decode", func(b *testing.B) {
				for b.Loop() {
					d, err := projections.DecodeSnapshot(raw)
					if err != nil || d.NumCertificates() != bc.n {
						b.Fatalf("decoded %v certificates: %v", d.NumCertificates(), err)
					}
				}
			})
		})
	}
}
