package daemon_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// trickle writes the headers of a request with a body of length bytes,
// then one byte of it every gap, until stop closes or a write fails.
func trickle(c net.Conn, method, path string, length int, gap time.Duration, stop <-chan struct{}) {
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: trustlog\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", method, path, length); err != nil {
		return
	}
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for range length - 1 {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			return
		}
	}
}

// TestSlowBodies is the review's slow-body pattern: connections that send
// their request body one byte every few hundred milliseconds. Each is
// answered 408 (a body the handler reads) or closed (a body the gate
// refused to read, which the server would otherwise wait for) once the
// body's time is up, and the server goes on serving.
func TestSlowBodies(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) {
		c.BodyTimeout = time.Second
		c.MinBodyRate = 1 << 20 // the length adds nothing to the second
	})
	addr := td.d.HTTPSAddr()
	cfg := td.tlsConfig(t, nil, tls.VersionTLS13, tls.VersionTLS13)
	cfg.NextProtos = []string{"http/1.1"}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	t.Cleanup(func() { close(stop); senders.Wait() })

	const conns = 40
	type outcome struct {
		status int // 0: closed without an answer
		took   time.Duration
		err    error
	}
	results := make([]outcome, conns)
	var wg sync.WaitGroup
	for i := range conns {
		// Half send to a route that reads the body (a token redemption,
		// open to anyone), half to one that refuses them unread.
		method, path := "POST", "/1.0/certificates"
		if i%2 == 1 {
			method, path = "PUT", "/1.0/trustlog/pki/crl"
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		start := time.Now()
		senders.Go(func() { trickle(c, method, path, 1000, 200*time.Millisecond, stop) })
		wg.Go(func() {
			// Whatever the answer, the connection must end: read until EOF,
			// within a bound far above the body's second.
			_ = c.SetReadDeadline(start.Add(20 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				results[i].status = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_, err = io.Copy(io.Discard, br)
			} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				results[i].err = fmt.Errorf("still open after %v", time.Since(start).Round(time.Millisecond))
			}
			results[i].took = time.Since(start)
		})
	}
	wg.Wait()
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("connection %d: %v", i, r.err)
		case i%2 == 0 && r.status != http.StatusRequestTimeout:
			t.Errorf("connection %d (body read by its handler): HTTP %d after %v, want 408", i, r.status, r.took)
		case i%2 == 1 && r.status != http.StatusForbidden:
			t.Errorf("connection %d (body refused unread): HTTP %d after %v, want 403 then the connection closed", i, r.status, r.took)
		}
	}
	// The server is still there for everyone else.
	if got := td.server(t, td.client(t, nil)); got.Auth != "untrusted" {
		t.Errorf("GET /1.0 after the slow bodies: %+v", got)
	}
}

// TestBodyDeadlineLifted: a body that arrives in time is served, and the
// deadline it was given does not cut the connection's later requests or
// a handler that is still working when it would have passed.
func TestBodyDeadlineLifted(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) {
		c.BodyTimeout = 300 * time.Millisecond
		c.MinBodyRate = 1 << 20
	})
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	c := td.client(t, admin)
	for i := range 3 {
		rep := td.call(t, c, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.n": strings.Repeat("x", i+1)}})
		if rep.Code != http.StatusOK {
			t.Fatalf("PATCH %d: %+v", i, rep)
		}
		time.Sleep(400 * time.Millisecond) // past the body's deadline, on the same connection
	}
}

// TestUnauthenticatedConnectionsBounded: connections on which nothing has
// authenticated are capped across all sources together; the oldest is
// closed to make room for a new one, and a connection that authenticated
// is never closed for that.
func TestUnauthenticatedConnectionsBounded(t *testing.T) {
	t.Parallel()
	const limit = 6
	td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) {
		c.MaxUnauthenticatedConns = limit
		c.HeaderTimeout = time.Minute // idle connections stay unless evicted
	})
	addr := td.d.HTTPSAddr()
	cfg := td.tlsConfig(t, nil, tls.VersionTLS13, tls.VersionTLS13)
	// Each from its own loopback address: the per-source cap is not what
	// closes them.
	dial := func(i int) *tls.Conn {
		t.Helper()
		d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// A trusted client authenticates first, on a connection it keeps.
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	kept := td.client(t, admin)
	td.must(t, http.StatusOK, kept, "GET", "/1.0/certificates", nil)

	var old []*tls.Conn
	for i := range limit {
		old = append(old, dial(i))
	}
	for i := range limit {
		dial(limit + i)
	}
	// Every one of the first wave was closed to make room for the second.
	for i, c := range old {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("unauthenticated connection %d still open with %d newer ones over a cap of %d", i, limit, limit)
		}
	}
	// The authenticated connection is still the one in use.
	reused := false
	req, _ := http.NewRequest("GET", "https://"+addr+"/1.0/certificates", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := kept.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !reused {
		t.Errorf("authenticated client after the flood: HTTP %d, connection reused %v", resp.StatusCode, reused)
	}
}
