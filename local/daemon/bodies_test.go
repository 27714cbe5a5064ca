package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/pki"
)

// rssBytes reads this process's resident set size from /proc.
func rssBytes(tb testing.TB) int64 {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatalf("the resident size is read from /proc (Linux): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestBigBodiesOfRefusedCallers is the review's big-body attack: a
// restricted client sends 12 PUTs of 32 MiB to the CRL endpoint at once.
// The gate refuses it before reading a body (the route is admin-only), so
// the process's resident memory grows by far less than one body, not by
// twelve of them (it grew from 120 MB to 1.1 GB when the handler decoded
// the body first). Not parallel: the resident size is the whole process's.
func TestBigBodiesOfRefusedCallers(t *testing.T) {
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	restricted := selfSigned(t, "restricted", clock.Now().Add(-time.Hour), clock.Now().Add(24*time.Hour))
	s.trust(t, restricted, api.CertificatesPost{Name: "restricted", Restricted: true, Projects: []string{"p1"}})
	c := s.client(t, restricted)
	url := "https://" + s.d.HTTPSAddr() + "/1.0/trustlog/pki/crl"
	before := s.lastSeq(t)

	// One body of the largest size the route takes, shared by the senders
	// (the client side's memory is the same in both runs of this test).
	body := bytes.Repeat([]byte("A"), pki.MaxCRLBody-len(`{"crl":""}`))
	body = append(append([]byte(`{"crl":"`), body...), `"}`...)

	// Sample the resident size while the requests run.
	stop := make(chan struct{})
	var peak int64
	var sampler sync.WaitGroup
	base := rssBytes(t)
	sampler.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if r := rssBytes(t); r > peak {
				peak = r
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	const senders = 12
	codes := make([]int, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "PUT", url, bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := c.Do(req)
			if err != nil {
				// The server may close the connection while the client still
				// writes the body it refused; that is a refusal too.
				codes[i] = -1
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()

	growth := peak - base
	t.Logf("resident size %d MiB before, peak %d MiB (+%d MiB); answers %v", base>>20, peak>>20, growth>>20, codes)
	for i, code := range codes {
		if code != http.StatusForbidden && code != -1 {
			t.Errorf("request %d: HTTP %d, want 403", i, code)
		}
	}
	// Generous: one 32 MiB body read and decoded would cost more.
	if limit := int64(pki.MaxCRLBody); growth > limit {
		t.Errorf("resident size grew by %d MiB under refused uploads, more than %d MiB", growth>>20, limit>>20)
	}
	if after := s.lastSeq(t); after != before {
		t.Errorf("refused uploads appended %v", s.types(t, before+1))
	}
}
