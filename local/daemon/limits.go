package daemon

import (
	"container/list"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustlog/trustlog/functions/response"
)

// Listener limits of the HTTPS API, with their defaults.
const (
	// DefaultHeaderTimeout bounds the TLS handshake and the request
	// headers: a client that sends them slowly (slowloris) is cut off.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultMaxConnsPerSource caps the concurrent connections from one
	// source address; more are closed as soon as they are accepted.
	DefaultMaxConnsPerSource = 256
	// DefaultMaxUnauthenticatedConns caps the connections, from all
	// sources together, on which no request has authenticated yet. A new
	// connection over the cap closes the oldest of them.
	DefaultMaxUnauthenticatedConns = 1024
	// DefaultBodyTimeout and DefaultMinBodyRate bound the time to read a
	// request body: DefaultBodyTimeout, plus the time the body's length
	// takes at DefaultMinBodyRate bytes a second (30 s for a small body,
	// about 9 minutes for a 32 MiB CRL).
	DefaultBodyTimeout = 30 * time.Second
	DefaultMinBodyRate = 64 << 10
	// maxHeaderBytes caps the request line and headers.
	maxHeaderBytes = 64 << 10
	// undeclaredBody is the length a body without Content-Length is given
	// time for.
	undeclaredBody = 1 << 20
)

// connLimiter is the HTTPS listener's guard: it closes connections beyond
// max per source IP address, and keeps the connections no request has
// authenticated on yet (every connection starts so) under a cap for all
// sources together, by closing the oldest of them when a new one comes.
// A connection leaves that pool for good when authn vouches for it
// (authn.WithConnVouch), so trusted clients are never closed to make room.
type connLimiter struct {
	net.Listener
	perSource int
	maxUnauth int
	log       *slog.Logger

	mu     sync.Mutex
	count  map[string]int
	unauth list.List // of *limitedConn, oldest first

	lastWarn atomic.Int64 // unix seconds of the last eviction warning
}

func newConnLimiter(ln net.Listener, perSource, maxUnauth int, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: ln, perSource: perSource, maxUnauth: maxUnauth, log: log, count: map[string]int{}}
}

// Accept returns the next connection within the per-source cap;
// connections over it are closed here and never reach the server.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			host = c.RemoteAddr().String()
		}
		l.mu.Lock()
		if l.count[host] >= l.perSource {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.count[host]++
		var evict *limitedConn
		if l.unauth.Len() >= l.maxUnauth {
			evict = l.unauth.Remove(l.unauth.Front()).(*limitedConn)
			evict.elem = nil
		}
		lc := &limitedConn{Conn: c, l: l, host: host}
		lc.elem = l.unauth.PushBack(lc)
		l.mu.Unlock()
		if evict != nil {
			// Its server goroutine sees the connection fail and closes
			// it, which gives its source's slot back.
			evict.Conn.Close()
			l.warnEviction()
		}
		return lc, nil
	}
}

// warnEviction logs, at most once a minute, that the cap was reached.
func (l *connLimiter) warnEviction() {
	now := time.Now().Unix()
	if last := l.lastWarn.Load(); now-last >= 60 && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("unauthenticated connections at their cap: closing the oldest", "cap", l.maxUnauth)
	}
}

// limitedConn is a connection the limiter counts.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	host string
	elem *list.Element // in l.unauth while unauthenticated; guarded by l.mu
	once sync.Once
}

// vouch takes the connection out of the unauthenticated pool.
func (c *limitedConn) vouch() {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.elem != nil {
		c.l.unauth.Remove(c.elem)
		c.elem = nil
	}
}

// Close closes the connection and gives its slots back, once.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		defer c.l.mu.Unlock()
		if c.elem != nil {
			c.l.unauth.Remove(c.elem)
			c.elem = nil
		}
		if c.l.count[c.host]--; c.l.count[c.host] <= 0 {
			delete(c.l.count, c.host)
		}
	})
	return err
}

// limitedOf returns the limiter's connection under a server's connection.
func limitedOf(c net.Conn) *limitedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*limitedConn)
	return lc
}

// bodyDeadline bounds the time to read each request body on a connection
// with a read deadline, set before the handler runs: base plus the time
// the declared length takes at rate bytes a second. The deadline also
// bounds the server's reading of what a handler left unread (a refused
// request's body). net/http lifts it once the body has been read to its
// end, when it starts reading the connection only to notice the client
// going away (TestBodyDeadlineLiftedAtEOF), so a handler still at work
// then is not cut off.
func bodyDeadline(next http.Handler, base time.Duration, rate int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			next.ServeHTTP(w, r) // no body: nothing to bound
			return
		}
		size := r.ContentLength
		if size < 0 {
			size = undeclaredBody
		}
		d := base + time.Duration(size/rate)*time.Second
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(d)); err == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, within: d}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody turns a body's timeout into a 408 in the API's envelope.
type deadlineBody struct {
	io.ReadCloser
	within time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, &response.Error{Status: http.StatusRequestTimeout,
			Message: fmt.Sprintf("Request body timed out: it did not arrive within %s", b.within.Round(time.Second))}
	}
	return n, err
}
