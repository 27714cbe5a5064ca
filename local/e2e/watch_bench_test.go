package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// sseEvents returns a channel of the SSE event names read from an open
// stream of GET /1.0/trustlog/events, with the time each arrived.
func sseEvents(b *testing.B, s *server, query string) (<-chan time.Time, func()) {
	b.Helper()
	pair, cert := p384Cert(b, "monitor", false)
	s.trust(b, cert, "monitor")
	c := benchClient(pair)
	c.Timeout = 0
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+s.d.HTTPSAddr()+"/1.0/trustlog/events"+query, nil)
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("monitor: %v %v", err, resp)
	}
	out := make(chan time.Time, 1<<16)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: trustlog.config.changed") || strings.HasPrefix(sc.Text(), "event: trustlog.certificate.trusted") {
				out <- time.Now()
			}
		}
		close(out)
	}()
	return out, cancel
}

// BenchmarkTrustChangeToMonitor measures the end-to-end latency from an
// admin's change (PATCH /1.0 over the unix socket, one ConfigChanged
// event) to a `trustlog monitor` client (server-sent events over mTLS)
// receiving it: decide, append to JetStream, the monitor's consumer,
// the SSE write. Reported as p50 and p99 besides the mean.
func BenchmarkTrustChangeToMonitor(b *testing.B) {
	s := newServer(b, startBench(b), nil)
	got, stop := sseEvents(b, s, "")
	defer stop()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		if code, env := s.call(b, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.bench": fmt.Sprint(i)}}); code != 200 {
			b.Fatalf("PATCH: %d %s", code, env.Error)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(t0))
		case <-time.After(10 * time.Second):
			b.Fatal("the monitor did not see the change within 10 s")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkMonitorThroughput measures how fast a monitor client catches
// up on a stream of 10,000 trust changes (since=1): events per second
// through the consumer, the type filter and the SSE writer.
func BenchmarkMonitorThroughput(b *testing.B) {
	d := startBench(b)
	fillTrustStore(b, d, 10_000)
	s := newServer(b, d, nil)
	for b.Loop() {
		got, stop := sseEvents(b, s, "?since=1&type=certificate.trusted")
		start := time.Now()
		n := 0
		for n < 10_000 {
			select {
			case <-got:
				n++
			case <-time.After(30 * time.Second):
				b.Fatalf("caught up on %d of 10000 events in 30 s", n)
			}
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		stop()
	}
}

// startBench starts a daemon for a benchmark, closed when it ends.
func startBench(b *testing.B) *daemon.Daemon {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: b.TempDir(), HTTPSAddress: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}
