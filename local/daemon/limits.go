package daemon

import (
	"net"
	"sync"
	"time"
)

// Listener limits of the HTTPS API, with their defaults.
const (
	// DefaultHeaderTimeout bounds the TLS handshake and the request
	// headers: a client that sends them slowly (slowloris) is cut off.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultMaxConnsPerSource caps the concurrent connections from one
	// source address; more are closed as soon as they are accepted.
	DefaultMaxConnsPerSource = 256
	// maxHeaderBytes caps the request line and headers.
	maxHeaderBytes = 64 << 10
)

// perSourceListener closes connections beyond max concurrent ones per
// source IP address.
type perSourceListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	count map[string]int
}

func limitPerSource(ln net.Listener, max int) net.Listener {
	return &perSourceListener{Listener: ln, max: max, count: map[string]int{}}
}

// Accept returns the next connection within the limit; connections over
// it are closed here and never reach the server.
func (l *perSourceListener) Accept() (net.Conn, error) {
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
		if l.count[host] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.count[host]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *perSourceListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[host]--; l.count[host] <= 0 {
		delete(l.count, host)
	}
}

// countedConn gives its slot back once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
