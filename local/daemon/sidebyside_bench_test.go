//go:build unix

package daemon_test

import (
	"io"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkSideBySide runs trustlogd and a bare Go mTLS server in one run,
// with 100,000 and then 1,000,000 trusted certificates: the same server
// certificate and key, the same client certificate, the same TLS 1.3 and
// HTTP settings, and the same response bytes. trustlogd authenticates the
// client against its trust store and builds GET /1.0; the bare server
// answers the bytes trustlogd answered, and checks nothing.
//
// Rows, each with the load generator in a second process (64 clients):
//
//   - keepalive/trustlogd, keepalive/bare: requests over keep-alive
//     connections (opened before the timed region).
//
//   - handshake/trustlogd, handshake/bare: a new connection with a full
//     TLS 1.3 handshake (no resumption) for every request.
//
//   - keepalive/interleaved: both servers over keep-alive in alternating
//     slices of interleaveSlice requests, b.N requests each, so that
//     whatever drifts during a run (the collector's phase, background
//     work of the embedded NATS server, the host) falls on both alike. It
//     reports each side's req/s and server CPU per request, and their
//     ratio (ratio: trustlogd's req/s over the bare server's).
//
// Metrics: req/s (wall clock), the client's p50 and p99 latency, and the
// CPU time per request of the server process and of the client process.
// Method and results: docs/benchmarks.md.
func BenchmarkSideBySide(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(sizeName(n), func(b *testing.B) {
			fx := newGet10Fixture(b, n)
			daemonURL := "https://" + fx.d.HTTPSAddr() + "/1.0"
			body := get10Body(b, fx.httpClient("body"), daemonURL)
			bareURL := get10FixedServer(b, fx.dir, body) + "/1.0"
			for _, mode := range []struct {
				name    string
				newConn bool
			}{{"keepalive", false}, {"handshake", true}} {
				b.Run(mode.name+"/trustlogd", func(b *testing.B) { sideBySide(b, fx, daemonURL, mode.newConn) })
				b.Run(mode.name+"/bare", func(b *testing.B) { sideBySide(b, fx, bareURL, mode.newConn) })
			}
			b.Run("keepalive/interleaved", func(b *testing.B) { interleaved(b, fx, daemonURL, bareURL) })
		})
	}
}

func sizeName(n int) string {
	if n >= 1_000_000 {
		return "trusted=1M"
	}
	return "trusted=100k"
}

// get10Body returns the body of GET url.
func get10Body(b *testing.B, c *http.Client, url string) []byte {
	b.Helper()
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return body
}

// sideBySide sends b.N requests to url from the load generator process and
// reports throughput, latency and CPU per request on both sides.
func sideBySide(b *testing.B, fx *get10Fixture, url string, newConn bool) {
	lg := fx.loadgenMode(b, url, newConn)
	// Outside the timed region: opens the keep-alive connections.
	if _, err := lg.run(4 * get10Conns); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0, gc0 := time.Now(), get10ProcessCPU(), get10GCCycles()
	res, err := lg.run(b.N)
	cpu, wall, gcs := get10ProcessCPU()-cpu0, time.Since(start), get10GCCycles()-gc0
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/wall.Seconds(), "req/s")
	b.ReportMetric(float64(res.P50.Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(res.P99.Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(get10PerOp(cpu, b.N), "server-cpu-µs/op")
	b.ReportMetric(get10PerOp(res.CPU, b.N), "client-cpu-µs/op")
	b.ReportMetric(float64(gcs), "gc-cycles")
}

// interleaveSlice is how many requests one side serves in one turn of
// keepalive/interleaved (≈ 0.1 s here).
const interleaveSlice = 2_000

// interleaved serves b.N keep-alive requests from each server in turns of
// interleaveSlice requests. The turns come in pairs, one per server, in the
// order T B, B T, T B, … (T trustlogd, B bare), so that a drift that is
// linear across a pair falls on both alike. Each pair gives one ratio of
// the two turns' throughputs. "ratio" is their median: a burst of noise
// from the host moves one pair, not the median. "ratio-total" is the ratio
// of the two sides' total throughputs, which such a burst does move.
//
// The heap is collected before each pair, outside the clock, so that no
// collection falls inside a turn ("*-gc-cycles" counts those that still
// do). With 100k certificates the live heap is ≈ 130 MB and a 3 s round
// allocates about that much: one collection per round, ≈ 0.1 s of CPU,
// which the testing package's collection before each round puts at the
// same point of every round, so it fell in the same side's turns round
// after round and moved that side's figure by 5-10 %. The collector's
// cost per request follows the bytes allocated per request (B/op of the
// keepalive rows, which start from a collection and carry it in
// proportion); this row compares the request paths between collections.
func interleaved(b *testing.B, fx *get10Fixture, daemonURL, bareURL string) {
	sides := []struct {
		lg   *loadgen
		wall time.Duration
		cpu  time.Duration
		gcs  uint64 // collections that ended during this side's turns
	}{{lg: fx.loadgenMode(b, daemonURL, false)}, {lg: fx.loadgenMode(b, bareURL, false)}}
	for _, side := range sides {
		if _, err := side.lg.run(4 * get10Conns); err != nil { // opens the connections
			b.Fatal(err)
		}
	}
	var ratios []float64
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		n := min(interleaveSlice, b.N-done)
		var turn [2]time.Duration
		for k := range sides {
			i := k ^ len(ratios)&1 // T B, then B T
			start, cpu0, gc0 := time.Now(), get10ProcessCPU(), get10GCCycles()
			if _, err := sides[i].lg.run(n); err != nil {
				b.Fatal(err)
			}
			turn[i] = time.Since(start)
			sides[i].cpu += get10ProcessCPU() - cpu0
			sides[i].gcs += get10GCCycles() - gc0
			sides[i].wall += turn[i]
		}
		ratios = append(ratios, turn[1].Seconds()/turn[0].Seconds()) // same n: rate ratio is the inverse of the wall ratio
		done += n
	}
	b.StopTimer()
	rate := func(i int) float64 { return float64(b.N) / sides[i].wall.Seconds() }
	b.ReportMetric(rate(0), "trustlogd-req/s")
	b.ReportMetric(rate(1), "bare-req/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(rate(0)/rate(1), "ratio-total")
	b.ReportMetric(get10PerOp(sides[0].cpu, b.N), "trustlogd-cpu-µs/op")
	b.ReportMetric(get10PerOp(sides[1].cpu, b.N), "bare-cpu-µs/op")
	b.ReportMetric(float64(sides[0].gcs), "trustlogd-gc-cycles")
	b.ReportMetric(float64(sides[1].gcs), "bare-gc-cycles")
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
