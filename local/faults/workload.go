package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/local/faults/history"
)

// workload drives the cluster the way its users would: admins trusting and
// removing certificates and issuing tokens over the nodes' unix sockets,
// clients redeeming tokens and making authenticated requests over HTTPS.
// Every operation is recorded with when it was invoked and completed and
// how it ended: ok, fail (certainly not applied) or unknown (the answer
// was lost: it may or may not have been applied).
type workload struct {
	nodes   []*node
	clients int
	opTime  time.Duration
	rec     func(history.Op)
	rng     *mrand.Rand
	rngMu   sync.Mutex
	nextID  atomic.Int64
	ca      *authority

	crlMu   sync.Mutex
	crlNum  int64
	revoked []*clientCert // every certificate a CRL was sent for

	mu     sync.Mutex
	certs  []*clientCert // added (acknowledged or maybe), for reads and removals
	tokens []*issued     // issued tokens, for redemptions
}

// clientCert is a client's certificate and what the workload did with it.
type clientCert struct {
	fp      string
	serial  *big.Int
	pair    tls.Certificate
	removed bool // a removal was attempted
	revoked bool // a CRL revoking it was sent
}

// issued is a trust token and how many redemptions were tried.
type issued struct {
	id       string
	token    string
	attempts int
}

// intn is a seeded random number in [0, n).
func (w *workload) intn(n int) int {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.IntN(n)
}

// Pacing of each client: a pause between operations, a longer one after
// an operation that did not succeed (a node down answers at once, and a
// client hammering it would fill the history with the same refusal).
const (
	thinkTime = 20 * time.Millisecond
	backOff   = 250 * time.Millisecond
)

// run drives clients concurrent workers until ctx ends.
func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	for c := range w.clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				pause := thinkTime
				if !w.step(ctx, c) {
					pause = backOff
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}
	wg.Wait()
}

// step runs one operation of a random kind on a random node and reports
// whether it succeeded (or had nothing to do).
func (w *workload) step(ctx context.Context, client int) bool {
	nd := w.nodes[w.intn(len(w.nodes))]
	switch r := w.intn(100); {
	case r < 20:
		return w.add(ctx, client, nd)
	case r < 32:
		return w.remove(ctx, client, nd)
	case r < 72:
		return w.read(ctx, client, nd)
	case r < 83:
		return w.issue(ctx, client, nd)
	case r < 97:
		return w.redeem(ctx, client, nd)
	default:
		return w.revoke(ctx, client, nd)
	}
}

// record stamps op, hands it on, and reports whether it succeeded.
func (w *workload) record(op history.Op) bool {
	op.ID = w.nextID.Add(1)
	w.rec(op)
	return op.Result == history.ResultOK
}

// outcome classifies a write's exchange: the expected status is ok; a 4xx
// is a refusal (fail: nothing was applied); a 5xx, a timeout or a
// connection lost after the request was sent is unknown (the write may
// have been stored without its answer reaching us); a request that never
// left (the node's socket was not there) is a fail.
func outcome(status, want int, err error) (string, string) {
	switch {
	case err != nil && unreachable(err):
		return history.ResultFail, err.Error()
	case err != nil:
		return history.ResultUnknown, err.Error()
	case status == want:
		return history.ResultOK, ""
	case status >= 400 && status < 500:
		return history.ResultFail, fmt.Sprintf("HTTP %d", status)
	default:
		return history.ResultUnknown, fmt.Sprintf("HTTP %d", status)
	}
}

// call sends one JSON request with c and returns the status and envelope.
func call(ctx context.Context, c *http.Client, method, url string, body any) (int, api.Response, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, api.Response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, api.Response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, api.Response{}, err
	}
	defer resp.Body.Close()
	var env api.Response
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, api.Response{}, err
	}
	_ = json.Unmarshal(raw, &env)
	return resp.StatusCode, env, nil
}

// unreachable reports whether err says the request was never sent (the
// socket was not there: the node is down), which makes a write a certain
// failure rather than an unknown.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (w *workload) add(ctx context.Context, client int, nd *node) bool {
	cc, err := w.newClientCert()
	if err != nil {
		return true
	}
	op := history.Op{Client: client, Node: nd.name, Kind: history.KindAdd, Key: cc.fp, Invoke: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, w.opTime)
	defer cancel()
	status, env, err := call(ctx, nd.unixClient(w.opTime), "POST", "http://trustlog/1.0/certificates",
		api.CertificatesPost{Name: "c-" + cc.fp[:12], Type: "client", Certificate: base64.StdEncoding.EncodeToString(cc.pair.Leaf.Raw)})
	op.Complete, op.Status = time.Now(), status
	op.Result, op.Error = outcome(status, http.StatusCreated, err)
	if op.Error == "" && env.Error != "" {
		op.Error = env.Error
	}
	ok := w.record(op)
	if op.Result != history.ResultFail {
		w.mu.Lock()
		w.certs = append(w.certs, cc)
		w.mu.Unlock()
	}
	return ok
}

func (w *workload) remove(ctx context.Context, client int, nd *node) bool {
	w.mu.Lock()
	var cc *clientCert
	for range 8 {
		if len(w.certs) == 0 {
			break
		}
		if c := w.certs[w.intn(len(w.certs))]; !c.removed {
			cc, c.removed = c, true
			break
		}
	}
	w.mu.Unlock()
	if cc == nil {
		return true
	}
	op := history.Op{Client: client, Node: nd.name, Kind: history.KindRemove, Key: cc.fp, Invoke: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, w.opTime)
	defer cancel()
	status, env, err := call(ctx, nd.unixClient(w.opTime), "DELETE", "http://trustlog/1.0/certificates/"+cc.fp, nil)
	op.Complete, op.Status = time.Now(), status
	op.Result, op.Error = outcome(status, http.StatusOK, err)
	if op.Error == "" && env.Error != "" {
		op.Error = env.Error
	}
	ok := w.record(op)
	if op.Result == history.ResultFail {
		w.mu.Lock()
		cc.removed = false
		w.mu.Unlock()
	}
	return ok
}

// read makes an authenticated request with a certificate the workload
// added (and perhaps removed) and records whether the node trusted it.
func (w *workload) read(ctx context.Context, client int, nd *node) bool {
	w.mu.Lock()
	if len(w.certs) == 0 {
		w.mu.Unlock()
		return true
	}
	cc := w.certs[w.intn(len(w.certs))]
	w.mu.Unlock()
	op := history.Op{Client: client, Node: nd.name, Kind: history.KindRead, Key: cc.fp, Invoke: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, w.opTime)
	defer cancel()
	status, env, err := call(ctx, httpsClient(&cc.pair, w.opTime), "GET", nd.url("/1.0"), nil)
	op.Complete, op.Status = time.Now(), status
	op.Result, op.Error = outcome(status, http.StatusOK, err)
	if op.Result != history.ResultOK {
		op.Result = history.ResultFail // a read changes nothing
	}
	if op.Result == history.ResultOK {
		var srv api.Server
		_ = json.Unmarshal(env.Metadata, &srv)
		op.Value = srv.Auth
		if srv.Auth == "trusted" && srv.AuthUserName != cc.fp {
			op.Error = "trusted as " + srv.AuthUserName
		}
	} else if op.Error == "" || env.Error != "" {
		op.Error += " " + env.Error
	}
	ok := w.record(op)
	return ok
}

func (w *workload) issue(ctx context.Context, client int, nd *node) bool {
	op := history.Op{Client: client, Node: nd.name, Kind: history.KindIssue, Invoke: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, w.opTime)
	defer cancel()
	name := fmt.Sprintf("tok-%d-%d", client, time.Now().UnixNano())
	status, env, err := call(ctx, nd.unixClient(w.opTime), "POST", "http://trustlog/1.0/certificates",
		api.CertificatesPost{Name: name, Token: true})
	op.Complete, op.Status = time.Now(), status
	op.Result, op.Error = outcome(status, http.StatusAccepted, err)
	if op.Result == history.ResultOK {
		var o api.Operation
		if json.Unmarshal(env.Metadata, &o) == nil {
			op.Key = o.ID
			m := o.Metadata
			tok := api.CertificateAddToken{ClientName: name, Fingerprint: fmt.Sprint(m["fingerprint"]), Secret: fmt.Sprint(m["secret"])}
			if addrs, ok := m["addresses"].([]any); ok {
				for _, a := range addrs {
					tok.Addresses = append(tok.Addresses, fmt.Sprint(a))
				}
			}
			if exp, ok := m["expiresAt"].(string); ok {
				tok.ExpiresAt, _ = time.Parse(time.RFC3339Nano, exp)
			}
			w.mu.Lock()
			w.tokens = append(w.tokens, &issued{id: o.ID, token: tok.Encode()})
			w.mu.Unlock()
		}
	} else if env.Error != "" {
		op.Error = env.Error
	}
	ok := w.record(op)
	return ok
}

// redeem presents an issued token with a new certificate; each token gets
// up to two attempts, from different clients and nodes, so that
// redemptions race.
func (w *workload) redeem(ctx context.Context, client int, nd *node) bool {
	w.mu.Lock()
	var tok *issued
	for i := len(w.tokens) - 1; i >= 0 && i >= len(w.tokens)-8; i-- {
		if w.tokens[i].attempts < 2 {
			tok = w.tokens[i]
			tok.attempts++
			break
		}
	}
	w.mu.Unlock()
	if tok == nil {
		return true
	}
	cc, err := w.newClientCert()
	if err != nil {
		return true
	}
	op := history.Op{Client: client, Node: nd.name, Kind: history.KindRedeem, Key: tok.id, Value: cc.fp, Invoke: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, w.opTime)
	defer cancel()
	status, env, err := call(ctx, httpsClient(&cc.pair, w.opTime), "POST", nd.url("/1.0/certificates"), api.CertificatesPost{TrustToken: tok.token})
	op.Complete, op.Status = time.Now(), status
	op.Result, op.Error = outcome(status, http.StatusCreated, err)
	if op.Error == "" && env.Error != "" {
		op.Error = env.Error
	}
	ok := w.record(op)
	if op.Result != history.ResultFail {
		w.mu.Lock()
		w.certs = append(w.certs, cc)
		w.mu.Unlock()
	}
	return ok
}

// url is the node's HTTPS URL of path.
func (nd *node) url(path string) string {
	return "https://" + net.JoinHostPort(nodeIP(nd.i), httpsPort) + path
}

// httpsClient is a TLS 1.3 client presenting cert. The nodes' server
// certificates are their own self-signed ones: the harness tests trust
// decisions, not server authentication, so it does not check them.
func httpsClient(cert *tls.Certificate, timeout time.Duration) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // see above
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// newClientCert makes a P-384 client certificate signed by the run's CA.
func (w *workload) newClientCert() (*clientCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "faults"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.ca.cert, &key.PublicKey, w.ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &clientCert{fp: hex.EncodeToString(sum[:]), serial: serial, pair: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, nil
}

// revoke publishes the next CRL: every certificate revoked so far and one
// or two more from the pool. CRLs are cumulative, so a revocation is never
// undone, and built one at a time, so their numbers only grow; one whose
// answer is lost still counts, as the next CRL carries its revocations.
// The operation's Value lists the fingerprints this CRL revokes that no
// lower-numbered one did (it revokes those too).
func (w *workload) revoke(ctx context.Context, client int, nd *node) bool {
	w.crlMu.Lock()
	defer w.crlMu.Unlock()
	var fps []string // revoked first by this CRL
	w.mu.Lock()
	for range 2 {
		if len(w.certs) == 0 {
			break
		}
		if c := w.certs[w.intn(len(w.certs))]; !c.revoked {
			c.revoked = true
			w.revoked = append(w.revoked, c)
			fps = append(fps, c.fp)
		}
	}
	w.mu.Unlock()
	if len(w.revoked) == 0 {
		return true
	}
	w.crlNum++
	var serials []*big.Int
	for _, c := range w.revoked {
		serials = append(serials, c.serial)
	}
	der, err := w.ca.crl(w.crlNum, serials)
	if err != nil {
		return false
	}
	op := history.Op{Client: client, Node: nd.name, Kind: history.KindCRL, Key: strconv.FormatInt(w.crlNum, 10),
		Value: strings.Join(fps, ","), Invoke: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, w.opTime)
	defer cancel()
	status, env, err := call(ctx, nd.unixClient(w.opTime), "PUT", "http://trustlog/1.0/trustlog/pki/crl",
		pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)})
	op.Complete, op.Status = time.Now(), status
	op.Result, op.Error = outcome(status, http.StatusOK, err)
	if op.Error == "" && env.Error != "" {
		op.Error = env.Error
	}
	return w.record(op)
}
