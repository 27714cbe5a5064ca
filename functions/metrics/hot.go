package metrics

import (
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The two families that every request touches, decisions and latency, are
// not client_golang vectors. A vector's series keeps one set of counts that
// every processor writes: under load the cache lines holding them go back
// and forth between the processors on every request (a counter's add, and a
// histogram's count, bucket and sum). Here each series keeps its counts in
// shards, a request writes one shard picked at random, and a scrape adds the
// shards up. Finding a series is one lookup in a map that is replaced, not
// changed, when a series is added, so readers take no lock.

// shards is how many copies of a series' counts are kept: enough that two
// processors rarely write the same one.
const shards = 16

// shard picks a shard for one write. math/rand/v2's top-level functions
// draw from per-thread state, so this writes nothing shared.
func shard() int { return int(rand.Uint32() % shards) }

// cacheLine pads shards apart.
const cacheLine = 64

// counterShard is one shard of a counter, alone on its cache line.
type counterShard struct {
	n atomic.Uint64
	_ [cacheLine - 8]byte
}

// shardedCounter is a counter kept in shards.
type shardedCounter struct{ s [shards]counterShard }

func (c *shardedCounter) inc() { c.s[shard()].n.Add(1) }

func (c *shardedCounter) load() uint64 {
	var n uint64
	for i := range c.s {
		n += c.s[i].n.Load()
	}
	return n
}

// latencyBuckets are the upper bounds (seconds) of the request duration
// histogram.
var latencyBuckets = [...]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

// histShard is one shard of a histogram: a count per bucket (the last for
// observations above every bound) and the sum of the observations, as
// float64 bits.
type histShard struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sum    atomic.Uint64
	_      [cacheLine - (len(latencyBuckets)+2)*8%cacheLine]byte
}

// shardedHistogram is the request duration histogram of one series.
type shardedHistogram struct{ s [shards]histShard }

func (h *shardedHistogram) observe(v float64) {
	i := 0
	for i < len(latencyBuckets) && v > latencyBuckets[i] {
		i++
	}
	s := &h.s[shard()]
	s.counts[i].Add(1)
	for {
		old := s.sum.Load()
		if s.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// snapshot returns the count, the sum and the cumulative count of each
// bucket. The count is the buckets' total, so a scrape that races with
// observations still sees the buckets add up to it.
func (h *shardedHistogram) snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	var per [len(latencyBuckets) + 1]uint64
	for i := range h.s {
		s := &h.s[i]
		for b := range s.counts {
			per[b] += s.counts[b].Load()
		}
		sum += math.Float64frombits(s.sum.Load())
	}
	buckets = make(map[float64]uint64, len(latencyBuckets))
	for b, le := range latencyBuckets {
		count += per[b]
		buckets[le] = count
	}
	count += per[len(latencyBuckets)]
	return count, sum, buckets
}

// seriesMap finds a series by key without a lock: the map behind the
// pointer is never changed once published; adding a series publishes a
// copy with it. The keys are few (routes × status codes, methods ×
// results) and added once each.
type seriesMap[K comparable, V any] struct {
	mu sync.Mutex // serialises adding
	m  atomic.Pointer[map[K]*V]
}

// get returns the series of k, adding it if it is new.
func (s *seriesMap[K, V]) get(k K) *V {
	if m := s.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[K]*V{}
	if old := s.m.Load(); old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		next = maps.Clone(*old)
	}
	v := new(V)
	next[k] = v
	s.m.Store(&next)
	return v
}

// each calls f for every series.
func (s *seriesMap[K, V]) each(f func(K, *V)) {
	if m := s.m.Load(); m != nil {
		for k, v := range *m {
			f(k, v)
		}
	}
}

var (
	descDecisions = prometheus.NewDesc("trustlog_auth_decisions_total",
		"Authentication decisions by method (tls, unix, pki, cluster, none) and result (admitted, refused).",
		[]string{"method", "result"}, nil)
	descLatency = prometheus.NewDesc("trustlog_request_duration_seconds",
		"Time to serve API requests, by route and status code.",
		[]string{"route", "code"}, nil)
)

// hotCollector exposes the sharded series at scrape time.
type hotCollector struct{ m *Metrics }

func (c hotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDecisions
	ch <- descLatency
}

func (c hotCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.decisions.each(func(k decisionKey, s *shardedCounter) {
		method, result := k.method, "refused"
		if method == "" {
			method = "none"
		}
		if k.admitted {
			result = "admitted"
		}
		ch <- prometheus.MustNewConstMetric(descDecisions, prometheus.CounterValue, float64(s.load()), method, result)
	})
	c.m.latency.each(func(k servedKey, h *shardedHistogram) {
		count, sum, buckets := h.snapshot()
		ch <- prometheus.MustNewConstHistogram(descLatency, count, sum, buckets, k.route, strconv.Itoa(k.status))
	})
}
