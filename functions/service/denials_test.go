package service_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/denials"
	"github.com/trustlog/trustlog/functions/service"
)

// TestRefusedFloodBounded: a flood of refused requests from many distinct
// sources, with as many client certificates (and some with none), paths,
// user agents and bodies, over real TLS through the gate, becomes at most
// one event per flush, whose stored size stays under denials.MaxEventBytes,
// and which still counts every attempt.
func TestRefusedFloodBounded(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	roots := x509.NewCertPool()
	roots.AddCert(s.https.Certificate())
	base := "https://" + s.host.addr
	const callers = 320 // more than denials.MaxKeys
	sent := 0
	for i := range callers {
		// Each caller comes from its own loopback address, with its own
		// certificate (some with none), on its own path.
		src := net.IPv4(127, 0, byte(1+i/250), byte(2+i%250))
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
		if i%5 != 1 || i%4 == 0 { // a redemption needs a certificate
			cfg.Certificates = []tls.Certificate{s.validCert(t, fmt.Sprintf("mallory-%d", i)).Pair}
		}
		tr := &http.Transport{TLSClientConfig: cfg, DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext}
		hc := &http.Client{Timeout: timeout, Transport: tr}
		junk := hex.EncodeToString([]byte(strings.Repeat(fmt.Sprint(i), 20)))
		var method, path string
		var body []byte
		switch i % 4 {
		case 0: // a garbage trust token
			method, path, body = "POST", "/1.0/certificates", []byte(`{"type":"client","trust_token":"`+junk+`"}`)
		case 1:
			method, path, body = "PATCH", "/1.0", []byte(`{"config":{"user.`+junk+`":"1"}}`)
		case 2:
			method, path = "DELETE", "/1.0/certificates/"+junk
		case 3:
			method, path, body = "PUT", "/1.0/certificates/"+junk+"?x="+junk, []byte(`{"name":"`+junk+`"}`)
		}
		for range 2 {
			req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("User-Agent", "flood/"+junk)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("caller %d from %s: %v", i, src, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 403 && resp.StatusCode != 401 {
				t.Fatalf("caller %d: %s %s answered %d, want a refusal", i, method, path, resp.StatusCode)
			}
			sent++
		}
		tr.CloseIdleConnections()
	}

	before := s.lastSeq(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	n, err := s.svc(t).FlushDenials(ctx)
	if err != nil || n != 1 {
		t.Fatalf("FlushDenials = %d, %v; want 1 event", n, err)
	}
	recs, err := s.store.Read(ctx, before+1, s.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("one flush stored %d events, want 1", len(recs))
	}
	if len(recs[0].Raw) > denials.MaxEventBytes {
		t.Errorf("the event is %d bytes, over the %d cap", len(recs[0].Raw), denials.MaxEventBytes)
	}
	env, p, err := events.DecodeRecord(recs[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	sum, ok := p.(*events.AccessDeniedSummary)
	if !ok {
		t.Fatalf("event %s, want an AccessDeniedSummary", env.Type)
	}
	listed := 0
	for _, c := range sum.Callers {
		listed += c.Count
	}
	if sum.Count != sent || listed+sum.Others != sent || len(sum.Callers) > denials.MaxCallers {
		t.Errorf("count %d = %d listed (%d callers) + %d others, want %d attempts", sum.Count, listed, len(sum.Callers), sum.Others, sent)
	}
	if bytes.Contains(recs[0].Raw, []byte("flood/")) || bytes.Contains(recs[0].Raw, []byte(hex.EncodeToString([]byte("77777777")))) {
		t.Error("the event carries what a caller sent")
	}
	t.Logf("%d refused requests from %d callers: one event of %d bytes listing %d callers, %d others",
		sent, callers, len(recs[0].Raw), len(sum.Callers), sum.Others)
	if n, _ := s.svc(t).FlushDenials(ctx); n != 0 {
		t.Errorf("a flush with nothing counted wrote %d events", n)
	}
}

// svc returns the service the stack serves.
func (s *stack) svc(t *testing.T) *service.Service {
	t.Helper()
	svc, ok := s.https.Config.Handler.(*service.Service)
	if !ok {
		t.Fatal("the stack serves no service")
	}
	return svc
}
