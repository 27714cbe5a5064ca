package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/trustlog/trustlog/functions/acme"
	"github.com/trustlog/trustlog/functions/serverinfo"
)

// Listener keys (core.https_address, acme.http.port) are checked before a
// change of this member's value is recorded: CheckListen binds the new
// address and keeps the listener, reserved for the move the recorded
// change makes (reconcileHTTPS, reconcileACMEHTTP take it), so that no
// other process can take the address in between.

// reserveTTL bounds how long a reserved listener waits for its change to
// be applied; past it (the write failed, or was never made) it is closed.
const reserveTTL = 30 * time.Second

// listenTimeout bounds the resolution of a host name in a listen address.
const listenTimeout = 5 * time.Second

// reservation is a listener CheckListen bound for key at addr.
type reservation struct {
	addr  string
	ln    net.Listener
	timer *time.Timer
}

// CheckListen implements serverinfo.ListenChecker: it binds addr for key
// (core.https_address or acme.http.port) unless the listener of key is
// already there, and keeps the listener for the move. The errors say what
// stops it: a host name that does not resolve, an address in use or not
// on this machine. acme.http.port is not checked when --acme-http-address
// decides this instance's challenge listener instead.
func (d *Daemon) CheckListen(ctx context.Context, key, addr string) error {
	if key == acme.KeyHTTPPort && d.cfg.ACMEHTTPAddress != "" {
		return nil
	}
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		return errors.New("trustlogd is shutting down")
	case d.listeningOn(key, addr):
		d.mu.Unlock()
		return nil
	case d.reserved[key] != nil && d.reserved[key].addr == addr:
		d.mu.Unlock()
		return nil // a change tried again
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, listenTimeout)
	defer cancel()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return listenError(addr, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		ln.Close()
		return errors.New("trustlogd is shutting down")
	}
	d.dropReserved(key)
	r := &reservation{addr: addr, ln: ln}
	r.timer = time.AfterFunc(reserveTTL, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.reserved[key] == r {
			d.dropReserved(key)
		}
	})
	if d.reserved == nil {
		d.reserved = map[string]*reservation{}
	}
	d.reserved[key] = r
	return nil
}

var _ serverinfo.ListenChecker = (*Daemon)(nil)

// listeningOn reports whether the listener of key is bound to addr (a
// fixed port: ":0" means a new one each time). d.mu is held.
func (d *Daemon) listeningOn(key, addr string) bool {
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return false
	}
	switch key {
	case serverinfo.KeyHTTPSAddress:
		return d.https != nil && d.https.addr == addr
	case acme.KeyHTTPPort:
		return d.acmeHTTP != nil && d.acmeHTTP.addr == addr
	}
	return false
}

// takeReserved returns the listener reserved for key at addr, if any,
// which the caller now owns. d.mu is held.
func (d *Daemon) takeReserved(key, addr string) net.Listener {
	r := d.reserved[key]
	if r == nil || r.addr != addr {
		return nil
	}
	r.timer.Stop()
	delete(d.reserved, key)
	return r.ln
}

// dropReserved closes the listener reserved for key, if any. d.mu is held.
func (d *Daemon) dropReserved(key string) {
	if r := d.reserved[key]; r != nil {
		r.timer.Stop()
		r.ln.Close()
		delete(d.reserved, key)
	}
}

// listen binds addr for key: the reserved listener if CheckListen bound
// it, else a new one. d.mu is held.
func (d *Daemon) listen(key, addr string) (net.Listener, error) {
	if ln := d.takeReserved(key, addr); ln != nil {
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	return ln, nil
}

// listenError says why addr cannot be listened on, without the resolver's
// own address.
func listenError(addr string, err error) error {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("cannot listen on %s: host %q does not resolve (%s)", addr, dns.Name, dns.Err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	return fmt.Errorf("cannot listen on %s on this machine: %w", addr, err)
}
