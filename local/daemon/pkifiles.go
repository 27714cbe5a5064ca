package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/projections"
)

// CRLPollInterval is how often <dir>/ca.crl is checked for a new list.
const CRLPollInterval = 2 * time.Second

var systemActor = events.Actor{Name: "trustlogd", Method: "system"}

// syncCA puts <dir>/server.ca in force, as LXD reads it at start. Without
// the file, the CA recorded in the log (set through the API) stays.
func (d *Daemon) syncCA(ctx context.Context) error {
	path := filepath.Join(d.cfg.Dir, "server.ca")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	ev, err := pki.CAEvent(string(raw))
	if err != nil {
		return fmt.Errorf("daemon: %s: %w", path, err)
	}
	if ev.Fingerprint == "" {
		return fmt.Errorf("daemon: %s holds no certificate", path)
	}
	if _, err := d.sys.Do(ctx, systemActor, func(m *projections.Model) ([]events.Payload, error) {
		return pki.ChangeCA(m, ev), nil
	}); err != nil {
		return fmt.Errorf("daemon: recording %s: %w", path, err)
	}
	d.log.Info("PKI mode: only certificates signed by the CA are trusted", "ca", ev.Fingerprint)
	return nil
}

// crlWatcher publishes <dir>/ca.crl whenever its content changes, so a
// revocation takes effect without a restart, and warns once per list when
// the list in force passes its nextUpdate.
//
// It tries the file again when the CA or the list in force changes too: a
// CA change clears the list, and putting the file's CA back must bring its
// revocations back, though the file did not change.
type crlWatcher struct {
	d         *Daemon
	handled   [32]byte // fileState when the file was last handled
	warnedFor string   // SHA-256 of the list last warned about
}

// fileState identifies the file's content together with the CA and the
// list in force.
func fileState(raw []byte, m *projections.Model) [32]byte {
	h := sha256.New()
	h.Write(raw)
	if ca := m.CA(); ca != nil {
		h.Write([]byte("\x00ca:" + ca.Fingerprint))
	}
	if c := m.CRL(); c != nil {
		h.Write([]byte("\x00crl:" + c.SHA256))
	}
	return [32]byte(h.Sum(nil))
}

func (w *crlWatcher) check(ctx context.Context) {
	d := w.d
	path := filepath.Join(d.cfg.Dir, "ca.crl")
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		d.log.Warn("cannot read CRL file", "path", path, "err", err)
	case fileState(raw, d.proj.Snapshot()) != w.handled:
		der, err := pki.DecodeCRL(string(raw))
		published := false
		if err == nil {
			_, err = d.sys.Do(ctx, systemActor, func(m *projections.Model) ([]events.Payload, error) {
				evs, err := pki.CRLEventsUnder(m, der, d.sys.MaxPayload())
				published = len(evs) > 0
				return evs, err
			})
		}
		switch {
		case err != nil:
			d.log.Warn("CRL file not published", "path", path, "err", err)
		case published:
			d.log.Info("CRL file published", "path", path)
		}
		// After a publication the list in force is the file's.
		w.handled = fileState(raw, d.proj.Snapshot())
	}
	if c := d.proj.Snapshot().CRL(); c.Stale(d.cfg.Now()) && w.warnedFor != c.SHA256 {
		w.warnedFor = c.SHA256
		d.log.Warn("the CRL in force is past its nextUpdate; publish a new one", "next_update", c.NextUpdate, "crl", c.SHA256)
	}
}

func (w *crlWatcher) run(ctx context.Context) {
	tick := time.NewTicker(CRLPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.check(ctx)
		}
	}
}
