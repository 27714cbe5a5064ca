package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	stdlog "log"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	legolog "github.com/go-acme/lego/v4/log"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/acme"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// legoQuiet sends lego's own log lines to the daemon's debug log.
var legoQuiet sync.Once

// acmeAccountKey loads <dir>/acme-account.key (ECDSA P-384, 0600), making
// it on first use. The account key identifies this installation to the CA.
func acmeAccountKey(dir string) (crypto.PrivateKey, error) {
	path := filepath.Join(dir, "acme-account.key")
	raw, err := os.ReadFile(path)
	if err == nil {
		b, _ := pem.Decode(raw)
		if b == nil {
			return nil, fmt.Errorf("%s holds no key", path)
		}
		return x509.ParseECPrivateKey(b.Bytes)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// RenewCertificate obtains the served certificate from the ACME CA of the
// acme.* keys, stores it (key 0600) in the data directory, serves it at
// once (no restart: tls.Config.GetCertificate), and records the rotation
// (public chain only). On any failure the current certificate stays.
func (d *Daemon) RenewCertificate(ctx context.Context) error {
	legoQuiet.Do(func() { legolog.Logger = stdlog.New(slogWriter{d}, "", 0) })
	s := acme.SettingsOf(d.proj.Snapshot())
	if err := s.Check(); err != nil {
		return err
	}
	if s.EABHMAC != "" {
		plain, err := d.box.Open(s.EABHMAC, []byte(acme.KeyEABHMAC))
		if err != nil {
			return fmt.Errorf("%s does not open under this host's sealing key", acme.KeyEABHMAC)
		}
		s.EABHMAC = string(plain)
	}
	key, err := acmeAccountKey(d.cfg.Dir)
	if err != nil {
		return fmt.Errorf("ACME account key: %w", err)
	}
	issued, err := acme.Obtain(ctx, s, key, d.cfg.ACMEHTTPClient, &acme.Provider{Committer: d.sys, Actor: systemActor})
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(issued.ChainPEM, issued.KeyPEM)
	if err != nil {
		return fmt.Errorf("ACME: the issued certificate and key do not match: %w", err)
	}
	// The key first: a crash between the two writes leaves the old
	// certificate with a key it does not match, which the next start
	// reports rather than serving a mismatched pair silently.
	if err := writeFileAtomic(filepath.Join(d.cfg.Dir, "server.key"), issued.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(d.cfg.Dir, "server.crt"), issued.ChainPEM, 0o644); err != nil {
		return err
	}
	d.cert.set(pair)
	fp := fingerprint(pair.Certificate[0])
	_, err = d.sys.Do(ctx, systemActor, func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{events.ServerCertificateRotated{Fingerprint: fp, Chain: string(issued.ChainPEM),
			Domains: issued.Leaf.DNSNames, NotAfter: issued.Leaf.NotAfter.UTC(), Source: "acme"}}, nil
	})
	if err != nil {
		return fmt.Errorf("ACME: certificate served but its rotation not recorded: %w", err)
	}
	d.log.Info("served certificate rotated", "source", "acme", "fingerprint", fp, "domains", issued.Leaf.DNSNames, "not_after", issued.Leaf.NotAfter)
	return nil
}

// slogWriter turns lego's log lines into debug records.
type slogWriter struct{ d *Daemon }

func (w slogWriter) Write(p []byte) (int, error) {
	w.d.log.Debug("lego", "msg", string(p))
	return len(p), nil
}

// reconcileACMEHTTP makes the plain-HTTP listener of HTTP-01 challenges
// (Incus's acme.http.port) match Config.ACMEHTTPAddress, else this
// member's acme.http.port (a member-local key: it names this machine's
// listener); "-" or an unset key means none. It binds the new address (or
// takes the listener CheckListen reserved for it) before closing the old
// one. A failure leaves the old listener; HTTPS keeps serving challenges.
func (d *Daemon) reconcileACMEHTTP() error {
	want := d.cfg.ACMEHTTPAddress
	if want == "" {
		if v := d.proj.Snapshot().MemberConfigValue(d.member, acme.KeyHTTPPort); v != "" {
			var err error
			if want, err = acme.ListenAddress(v); err != nil {
				return fmt.Errorf("%s: %w", acme.KeyHTTPPort, err)
			}
		}
	}
	if want == "-" {
		want = ""
	}
	d.mu.Lock()
	cur := d.acmeHTTP
	if d.closed || (cur == nil && want == "") || (cur != nil && cur.want == want) {
		d.mu.Unlock()
		return nil
	}
	var next *httpListener
	if want != "" {
		ln, err := d.listen(acme.KeyHTTPPort, want)
		if err != nil {
			d.mu.Unlock()
			return fmt.Errorf("%s: %w", acme.KeyHTTPPort, err)
		}
		h := acme.NewHandler(d.proj, d.Sync, d.log)
		srv := &http.Server{Handler: h.ChallengeServer(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		next = &httpListener{want: want, addr: want, bound: ln.Addr().String(), srv: srv}
		d.wg.Go(func() { _ = srv.Serve(ln) })
		d.log.Info("ACME challenges served on plain HTTP", "address", next.bound)
	}
	d.acmeHTTP = next
	d.mu.Unlock()
	if cur != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cur.srv.Shutdown(ctx)
	}
	return nil
}

// ACMEHTTPAddr returns where the plain-HTTP challenge listener is bound, "" if none.
func (d *Daemon) ACMEHTTPAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.acmeHTTP == nil {
		return ""
	}
	return d.acmeHTTP.bound
}

// Renewal policy.
const (
	// DefaultACMECheckInterval is how often the served certificate is
	// checked for renewal (it is also checked on every acme.* change).
	DefaultACMECheckInterval = time.Hour
	// acmeLease is how long a scheduled renewal by one instance keeps the
	// others from starting their own.
	acmeLease = 10 * time.Minute
	// Back-off after failures: doubling from the first to the last.
	acmeFirstBackoff = time.Minute
	acmeMaxBackoff   = 24 * time.Hour
)

// renewalDue says whether, and why, a certificate should be replaced at
// now under settings s: none from ACME yet, a configured domain it does
// not cover, or two thirds of its validity gone.
func renewalDue(s acme.Settings, leaf *x509.Certificate, fromACME bool, now time.Time) (string, bool) {
	switch {
	case !s.Enabled():
		return "", false
	case leaf == nil || !fromACME:
		return "no ACME certificate yet", true
	}
	for _, dom := range s.Domains {
		if leaf.VerifyHostname(dom) != nil {
			return "domains changed", true
		}
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.After(leaf.NotBefore.Add(life * 2 / 3)) {
		return "two thirds of the validity passed", true
	}
	return "", false
}

// CheckRenewal renews the served certificate if it is due (or if reason
// is given: an admin asked), recording the steps as events: scheduled
// (which also tells the other instances one is under way), then succeeded
// or failed with the next attempt, backing off from 1 minute to a day.
//
// An incomplete configuration (no domain, terms not agreed: the keys are
// being set one by one) is not a CA failure: a scheduled check does
// nothing, records nothing and leaves the back-off alone, and the change
// that completes the configuration starts an attempt at once; an admin's
// request is answered 400. The back-off is for the CA: it counts the
// failures of one configuration, and a change of the acme.* settings since
// this instance's last failure is a new request, tried at once.
func (d *Daemon) CheckRenewal(ctx context.Context, reason string) error {
	d.renewMu.Lock() // one renewal at a time on this instance
	defer d.renewMu.Unlock()
	now := d.cfg.Now()
	m := d.proj.Snapshot()
	s := acme.SettingsOf(m)
	if err := s.Check(); err != nil {
		if reason == "" {
			return nil // nothing to ask the CA yet
		}
		// Asked for a renewal the configuration cannot give: the asker's to fix.
		return response.BadRequest("ACME is not configured: " + err.Error())
	}
	settings := d.acmeKeys(m)
	if reason == "" {
		leaf := d.cert.cur.Load().pair.Leaf
		sc := m.ServerCertificate()
		fromACME := sc != nil && sc.Source == "acme" && sc.Fingerprint == d.Fingerprint()
		var due bool
		if reason, due = renewalDue(s, leaf, fromACME, now); !due {
			// The CA may ask for an early renewal (ARI): after a revocation,
			// for instance.
			key, err := acmeAccountKey(d.cfg.Dir)
			if err != nil || leaf == nil || !acme.RenewalSuggested(ctx, s, key, d.cfg.ACMEHTTPClient, leaf, now) {
				return nil
			}
			reason = "the CA's renewal information suggests it"
		}
		if d.backingOff(m.LastRenewal(), settings, now) {
			return nil
		}
	}
	ours := false
	_, err := d.sys.Do(ctx, systemActor, func(m *projections.Model) ([]events.Payload, error) {
		if r := m.LastRenewal(); r != nil && r.Outcome == events.RenewalScheduled && now.Sub(r.At) < acmeLease && r.Instance != d.source {
			return nil, nil // another instance is renewing
		}
		ours = true
		return []events.Payload{events.ACMERenewal{Outcome: events.RenewalScheduled, Domains: s.Domains, Reason: reason, Instance: d.source}}, nil
	})
	if err != nil || !ours {
		return err
	}
	renewErr := d.RenewCertificate(ctx)
	step := events.ACMERenewal{Outcome: events.RenewalSucceeded, Domains: s.Domains, Instance: d.source}
	d.acmeMu.Lock()
	if renewErr != nil {
		if settings != d.acmeFailedFor {
			d.acmeBackoff = 0 // the first failure of these settings
		}
		d.acmeBackoff = min(max(2*d.acmeBackoff, acmeFirstBackoff), acmeMaxBackoff)
		step.Outcome, step.Error, step.NextAttempt = events.RenewalFailed, renewErr.Error(), now.Add(d.acmeBackoff).UTC()
		d.acmeFailedFor, d.acmeFailedNext = settings, step.NextAttempt
	} else {
		d.acmeBackoff, d.acmeFailedFor, d.acmeFailedNext = 0, "", time.Time{}
	}
	d.acmeMu.Unlock()
	if _, err := d.sys.Do(ctx, systemActor, func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{step}, nil
	}); err != nil {
		d.log.Warn("renewal outcome not recorded", "err", err)
	}
	if renewErr != nil {
		d.log.Warn("certificate renewal failed; the current certificate stays", "err", renewErr, "next_attempt", step.NextAttempt)
	}
	return renewErr
}

// backingOff reports whether the last renewal step r is a failure whose
// back-off has not ended at now, for the settings now in force: a failure
// of this instance's with other settings does not hold a new
// configuration back. (Another instance's failure does: that instance
// retries the new settings itself.)
func (d *Daemon) backingOff(r *projections.Renewal, settings string, now time.Time) bool {
	if r == nil || r.Outcome != events.RenewalFailed || !now.Before(r.NextAttempt) {
		return false
	}
	d.acmeMu.Lock()
	defer d.acmeMu.Unlock()
	return !r.NextAttempt.Equal(d.acmeFailedNext) || settings == d.acmeFailedFor
}

// runACME checks for renewal at start, every interval, whenever an acme.*
// setting changes, and when the back-off of this instance's last failure
// ends, until ctx ends.
func (d *Daemon) runACME(ctx context.Context) {
	tick := time.NewTicker(d.cfg.ACMECheckInterval)
	defer tick.Stop()
	retry := time.NewTimer(0) // the first check, at start
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.acmeChanged:
		case <-retry.C:
		}
		if err := d.CheckRenewal(ctx, ""); err != nil && ctx.Err() == nil {
			d.log.Debug("ACME check", "err", err)
		}
		d.acmeMu.Lock()
		next := d.acmeFailedNext
		d.acmeMu.Unlock()
		if wait := next.Sub(d.cfg.Now()); !next.IsZero() && wait > 0 {
			retry.Reset(wait)
		}
	}
}

// acmeKeys fingerprints the settings an ACME order depends on (this
// member's acme.http.port among them), to notice changes.
func (d *Daemon) acmeKeys(m *projections.Model) string {
	var b []byte
	for _, k := range []string{acme.KeyDomain, acme.KeyEmail, acme.KeyAgreeTOS, acme.KeyCAURL, acme.KeyChallenge, acme.KeyEABKID, acme.KeyEABHMAC} {
		b = append(b, m.ConfigValue(k)...)
		b = append(b, 0)
	}
	return string(append(b, m.MemberConfigValue(d.member, acme.KeyHTTPPort)...))
}

// followRotation switches the served certificate when the log records a
// rotation this instance did not make, if the data directory holds that
// certificate and its key (a volume the instances share, or files an
// operator distributed): the key itself never travels through the log.
func (d *Daemon) followRotation() {
	sc := d.proj.Snapshot().ServerCertificate()
	if sc == nil || sc.Fingerprint == d.Fingerprint() {
		return
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(d.cfg.Dir, "server.crt"), filepath.Join(d.cfg.Dir, "server.key"))
	if err != nil || len(pair.Certificate) == 0 || fingerprint(pair.Certificate[0]) != sc.Fingerprint {
		if d.rotationSeen != sc.Fingerprint {
			d.rotationSeen = sc.Fingerprint
			d.log.Info("the served certificate was rotated elsewhere; this instance keeps its own until the new one is in its data directory",
				"fingerprint", sc.Fingerprint)
		}
		return
	}
	d.cert.set(pair)
	d.log.Info("served certificate switched to the rotated one", "fingerprint", sc.Fingerprint)
}
