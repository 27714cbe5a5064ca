package metrics_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/metrics"
)

// TestObserverConcurrent counts from many goroutines while scrapes run: no
// observation is lost, and every scrape's histogram adds up (its +Inf
// bucket is its count).
func TestObserverConcurrent(t *testing.T) {
	t.Parallel()
	m := metrics.New(fixed{fold(t)}, nil, func() time.Time { return t0 })
	const workers, each = 8, 2000
	done := make(chan struct{})
	scrapes := make(chan error, 1)
	go func() {
		defer close(scrapes)
		for i := 0; i < 200; i++ {
			select {
			case <-done:
				return
			default:
			}
			_, body := scrape(t, m, "")
			got := trustlogSamples(t, body)
			count := got[`trustlog_request_duration_seconds_count{code="200",route="GET /1.0"}`]
			inf := got[`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="+Inf"}`]
			if count != inf {
				scrapes <- fmt.Errorf("a scrape saw count %v and +Inf bucket %v", count, inf)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.Authenticated(authn.Identity{Trusted: true, Method: authn.MethodTLS}, true)
				m.Served("GET /1.0", 200, time.Duration(w*each+i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-scrapes; err != nil {
		t.Error(err)
	}

	_, body := scrape(t, m, "")
	got := trustlogSamples(t, body)
	n := float64(workers * each)
	var sum float64 // of 0..n-1 µs
	for i := range workers * each {
		sum += float64(i) * 1e-6
	}
	for series, want := range map[string]float64{
		`trustlog_auth_decisions_total{method="tls",result="admitted"}`:                     n,
		`trustlog_request_duration_seconds_count{code="200",route="GET /1.0"}`:              n,
		`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="0.0001"}`: 101, // 0..100 µs
		`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="0.01"}`:   10001,
		`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="+Inf"}`:   n,
	} {
		if v := got[series]; v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	const series = `trustlog_request_duration_seconds_sum{code="200",route="GET /1.0"}`
	if v := got[series]; v < sum*(1-1e-9) || v > sum*(1+1e-9) {
		t.Errorf("%s = %v, want %v", series, v, sum)
	}
}

// BenchmarkObserver is what the gate's counting costs a request: one
// decision and one duration, from every processor at once.
func BenchmarkObserver(b *testing.B) {
	m := metrics.New(fixed{fold(b)}, nil, func() time.Time { return t0 })
	id := authn.Identity{Trusted: true, Method: authn.MethodTLS}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Authenticated(id, true)
			m.Served("GET /1.0", 200, 150*time.Microsecond)
		}
	})
}
