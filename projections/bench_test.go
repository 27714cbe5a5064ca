package projections_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// trustedRecords builds n CertificateTrusted records in memory, each under
// a distinct fingerprint, carrying pemText as their certificate. It
// returns the records and the fingerprints' SHA-256 sums.
func trustedRecords(tb testing.TB, n int, pemText string) ([]events.Record, [][32]byte) {
	tb.Helper()
	ch := newChain(tb)
	recs := make([]events.Record, n)
	sums := make([][32]byte, n)
	var buf [8]byte
	for i := range n {
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		sums[i] = sha256.Sum256(buf[:])
		recs[i] = ch.next(&events.CertificateTrusted{
			Fingerprint: hex.EncodeToString(sums[i][:]),
			Name:        fmt.Sprintf("client-%d", i),
			Type:        events.CertificateTypeClient,
			Projects:    []string{},
			Certificate: pemText,
		}, nil)
	}
	return recs, sums
}

func fold(tb testing.TB, recs []events.Record) *projections.Model {
	b := projections.NewBuilder(nil)
	for _, r := range recs {
		if err := b.Apply(r); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Model()
}

// foldBatched folds recs as the projector replays them: ApplyAll on
// batches of 1024.
func foldBatched(tb testing.TB, recs []events.Record) *projections.Model {
	b := projections.NewBuilder(nil)
	for i := 0; i < len(recs); i += 1024 {
		b.ApplyAll(recs[i:min(i+1024, len(recs))], func(seq uint64, err error) { tb.Fatalf("event %d: %v", seq, err) })
	}
	return b.Model()
}

// BenchmarkLookup measures the hot-path trust-store lookup on a model of
// 100k entries from concurrent readers.
func BenchmarkLookup(b *testing.B) {
	const n = 100_000
	recs, sums := trustedRecords(b, n, "")
	m := fold(b, recs)
	if m.NumCertificates() != n {
		b.Fatalf("model holds %d certificates, want %d", m.NumCertificates(), n)
	}
	var next, misses atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919) // each reader starts elsewhere in the key set
		for pb.Next() {
			if _, ok := m.Certificate(sums[i%n]); !ok {
				misses.Add(1)
			}
			i++
		}
	})
	if misses.Load() != 0 {
		b.Errorf("%d lookups missed", misses.Load())
	}
}

// BenchmarkReplay100k measures a cold start: folding 100k stored
// CertificateTrusted records into a model with one Builder. With "pem"
// every record carries a real P-384 certificate, which the fold parses;
// "no-pem" isolates the cost of decoding and folding. "one-by-one" folds
// with Apply on one goroutine; "batched" with ApplyAll in batches of 1024,
// as the projector replays, decoding on every processor.
func BenchmarkReplay100k(b *testing.B) {
	const n = 100_000
	for _, bc := range []struct {
		name string
		pem  string
	}{
		{name: "pem", pem: newCert(b, "bench").PEM},
		{name: "no-pem", pem: ""},
	} {
		recs, _ := trustedRecords(b, n, bc.pem)
		var bytes int64
		for _, r := range recs {
			bytes += int64(len(r.Raw))
		}
		for _, mode := range []string{"one-by-one", "batched"} {
			b.Run(bc.name+"/"+mode, func(b *testing.B) {
				b.SetBytes(bytes)
				b.ReportAllocs()
				for b.Loop() {
					var m *projections.Model
					if mode == "one-by-one" {
						m = fold(b, recs)
					} else {
						m = foldBatched(b, recs)
					}
					if m.NumCertificates() != n {
						b.Fatalf("model holds %d certificates, want %d", m.NumCertificates(), n)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
				b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
