// Package client talks to a Trustlog (or LXD/Incus) server over HTTPS or
// the local unix socket: it sets up TLS with the client certificate and the
// server's pinned certificate, and turns the response envelope into values
// and errors.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

// Error is an error reply of the server: its HTTP status and message.
type Error struct {
	Status  int
	Message string
}

// Error implements error; the text is the server's message.
func (e *Error) Error() string { return e.Message }

// CertMismatchError reports a server that presented another certificate
// than the one pinned for it.
type CertMismatchError struct {
	Remote    string
	Pinned    string
	Presented string
	// PinPath is the file holding the pin, if known.
	PinPath string
}

// Error implements error; the text says how to recover.
func (e *CertMismatchError) Error() string {
	pin := e.PinPath
	if pin == "" {
		pin = "servercerts/" + e.Remote + ".crt"
	}
	return fmt.Sprintf("The server certificate of remote %q has changed: pinned fingerprint %s, presented %s. "+
		"If the change is expected (the server was reinstalled or its certificate replaced), check the new fingerprint with "+
		"the server's administrator, then run `trustlog remote remove %s` and `trustlog remote add %s <url>` again "+
		"(or replace %s with the new certificate). Otherwise the connection may be intercepted.",
		e.Remote, e.Pinned, e.Presented, e.Remote, e.Remote, pin)
}

// DaemonDownError reports a unix socket nobody listens on.
type DaemonDownError struct {
	Socket string
	Err    error
}

// Error implements error.
func (e *DaemonDownError) Error() string {
	return fmt.Sprintf("The trustlog daemon doesn't appear to be started (socket path: %s)", e.Socket)
}

// Unwrap returns the dial error.
func (e *DaemonDownError) Unwrap() error { return e.Err }

// Options configure a Client.
type Options struct {
	// Addr is "https://host:port" or "unix:///path/to/socket".
	Addr string
	// Remote names the remote in error messages.
	Remote string
	// PinPath is the file of the pinned certificate, for error messages.
	PinPath string
	// Certificate is the client certificate; nil sends none.
	Certificate *tls.Certificate
	// Pinned is the server certificate to accept (exact match), or nil.
	Pinned *x509.Certificate
	// Roots verifies the server when nothing is pinned; nil means the system pool.
	Roots *x509.CertPool
	// InsecureTLS allows TLS 1.2 (TRUSTLOG_INSECURE_TLS).
	InsecureTLS bool
	// Timeout bounds each request; 0 means 30 seconds.
	Timeout time.Duration
	// OIDC, if set, authenticates with OpenID Connect access tokens: every
	// request carries one, and a 401 naming an issuer refreshes it (or runs
	// the device flow) and retries once.
	OIDC *OIDC
}

// Client is a connection to one server. It is safe for concurrent use.
type Client struct {
	http   *http.Client
	base   string
	socket string // the unix socket, or ""
	oidc   *OIDC
}

// Fingerprint returns the lowercase hex SHA-256 of a certificate.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// TLSConfig returns the client TLS configuration for o: TLS 1.3 (1.2 only
// with InsecureTLS), the client certificate always offered, and the server
// verified by exact pin, or by Roots and host name.
func TLSConfig(o Options) *tls.Config {
	minVersion := uint16(tls.VersionTLS13)
	if o.InsecureTLS {
		minVersion = tls.VersionTLS12
	}
	cfg := &tls.Config{MinVersion: minVersion, RootCAs: o.Roots}
	if o.Certificate != nil {
		cert := o.Certificate
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	if o.Pinned != nil {
		pinned := o.Pinned
		cfg.InsecureSkipVerify = true // replaced by the exact pin below
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server presented no certificate")
			}
			if !bytes.Equal(raw[0], pinned.Raw) {
				sum := sha256.Sum256(raw[0])
				return &CertMismatchError{Remote: o.Remote, Pinned: Fingerprint(pinned), Presented: hex.EncodeToString(sum[:]), PinPath: o.PinPath}
			}
			if now := time.Now(); now.After(pinned.NotAfter) || now.Before(pinned.NotBefore) {
				return fmt.Errorf("the pinned server certificate of remote %q is not valid now (valid %s to %s)", o.Remote, pinned.NotBefore, pinned.NotAfter)
			}
			return nil
		}
	}
	return cfg
}

// New returns a client for o.
func New(o Options) (*Client, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{TLSClientConfig: TLSConfig(o), ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	base := strings.TrimSuffix(o.Addr, "/")
	path, unix := strings.CutPrefix(o.Addr, "unix://")
	if unix {
		tr = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		base = "http://unix.socket"
	} else if !strings.HasPrefix(o.Addr, "https://") {
		return nil, fmt.Errorf("invalid remote address %q", o.Addr)
	}
	c := &Client{http: &http.Client{Transport: tr, Timeout: timeout}, base: base, oidc: o.OIDC}
	if unix {
		c.socket = path
	}
	return c, nil
}

// Response is a decoded success reply.
type Response struct {
	Status    int
	Type      string
	Operation string
	ETag      string
	Metadata  json.RawMessage
}

// Do sends a request with an optional JSON body and If-Match ETag. Error
// replies become *Error; a pinned-certificate mismatch is a
// *CertMismatchError; a unix socket without a daemon is a
// *DaemonDownError (use errors.As).
func (c *Client) Do(ctx context.Context, method, path string, body any, etag string) (*Response, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	resp, err := c.send(ctx, method, path, raw, etag)
	if err != nil {
		return nil, err
	}
	return c.decode(resp)
}

// send makes the request, with its OIDC access token when the remote uses
// OIDC: on a 401 that names an issuer, the token is renewed (refresh, or
// device flow) and the request sent once more with the same body.
func (c *Client) send(ctx context.Context, method, path string, body []byte, etag string) (*http.Response, error) {
	token := ""
	if c.oidc != nil {
		var err error
		if token, err = c.oidc.accessToken(); err != nil {
			return nil, err
		}
	}
	resp, err := c.sendOnce(ctx, method, path, body, etag, token)
	if err != nil || c.oidc == nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch, ok := challengeOf(resp.Header)
	if !ok {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if token, err = c.oidc.renew(ctx, ch, token); err != nil {
		return nil, err
	}
	return c.sendOnce(ctx, method, path, body, etag, token)
}

func (c *Client) sendOnce(ctx context.Context, method, path string, body []byte, etag, token string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "Trustlog-CLI")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	if c.oidc != nil {
		// As the incus client: always a bearer token (empty before the
		// first login, which the server answers with its OIDC challenge).
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Incus-authenticated", "true")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var mismatch *CertMismatchError
		if errors.As(err, &mismatch) {
			return nil, mismatch
		}
		if c.socket != "" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			return nil, &DaemonDownError{Socket: c.socket, Err: err}
		}
		return nil, err
	}
	return resp, nil
}

// decode reads a reply envelope.
func (c *Client) decode(resp *http.Response) (*Response, error) {
	raw, err := readRaw(resp)
	if err != nil {
		return nil, err
	}
	return raw.Decode()
}

// RawResponse is a reply as the server sent it.
type RawResponse struct {
	Status      int
	ContentType string
	ETag        string
	Body        []byte
}

// Raw sends a request with an optional body (sent as JSON) and returns the
// reply undecoded, error replies included; the errors are those of Do
// before a reply arrives (*CertMismatchError, *DaemonDownError, ...).
func (c *Client) Raw(ctx context.Context, method, path string, body []byte) (*RawResponse, error) {
	resp, err := c.send(ctx, method, path, body, "")
	if err != nil {
		return nil, err
	}
	return readRaw(resp)
}

// readRaw reads and closes a reply's body, 64 MiB at most.
func readRaw(resp *http.Response) (*RawResponse, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	return &RawResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), ETag: resp.Header.Get("ETag"), Body: body}, nil
}

// Decode reads the reply envelope, as Do does: an error reply (or an
// HTTP status of 400 or more) is an *Error.
func (r *RawResponse) Decode() (*Response, error) {
	var env api.Response
	if err := json.Unmarshal(r.Body, &env); err != nil {
		return nil, fmt.Errorf("invalid reply from server (HTTP %d): %w", r.Status, err)
	}
	if env.Type == api.TypeError || r.Status >= 400 {
		msg := env.Error
		if msg == "" {
			msg = http.StatusText(r.Status)
		}
		return nil, &Error{Status: r.Status, Message: msg}
	}
	return &Response{Status: r.Status, Type: env.Type, Operation: env.Operation, ETag: r.ETag, Metadata: env.Metadata}, nil
}

// Stream opens a long-lived GET (server-sent events) and returns its body;
// the caller closes it. Error replies are decoded as by Do.
func (c *Client) Stream(ctx context.Context, path string) (io.ReadCloser, error) {
	// The same connection settings, without the per-request time limit:
	// a stream lasts until ctx ends.
	sc := *c
	sc.http = &http.Client{Transport: c.http.Transport}
	resp, err := sc.send(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		_, err := c.decode(resp)
		return nil, err
	}
	return resp.Body, nil
}

// Get fetches path and decodes its metadata into out, returning the ETag.
func (c *Client) Get(ctx context.Context, path string, out any) (string, error) {
	resp, err := c.Do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return "", err
	}
	if out != nil {
		if err := json.Unmarshal(resp.Metadata, out); err != nil {
			return "", fmt.Errorf("decode %s: %w", path, err)
		}
	}
	return resp.ETag, nil
}

// Server returns GET /1.0.
func (c *Client) Server(ctx context.Context) (api.Server, string, error) {
	var s api.Server
	etag, err := c.Get(ctx, "/1.0", &s)
	return s, etag, err
}

// FetchCertificate connects to addr without verifying the server and
// returns the certificate it presents, for the user (or a token) to judge.
func FetchCertificate(ctx context.Context, addr string, insecureTLS bool) (*x509.Certificate, error) {
	host := strings.TrimPrefix(addr, "https://")
	minVersion := uint16(tls.VersionTLS13)
	if insecureTLS {
		minVersion = tls.VersionTLS12
	}
	d := tls.Dialer{Config: &tls.Config{MinVersion: minVersion, InsecureSkipVerify: true}} // only to read the certificate
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("unable to connect to %s: %w", addr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", addr)
	}
	return certs[0], nil
}

// IsCertificateError reports whether err is a failure to verify the
// server's certificate (unknown authority, wrong host name, expired).
func IsCertificateError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}
