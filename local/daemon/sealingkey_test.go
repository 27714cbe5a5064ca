package daemon_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestSealingKeyEmpty: an empty sealing.key (left by an older trustlogd
// that crashed while writing it) is replaced by a new key when the log
// holds nothing sealed; when it holds a token's sealed secret or a
// sensitive configuration value, the daemon refuses to start, says so,
// and leaves the file alone, until the operator removes it.
func TestSealingKeyEmpty(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	empty := func(t *testing.T, dir string) string {
		t.Helper()
		path := filepath.Join(dir, daemon.SealingKeyFile)
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyOK := func(t *testing.T, path string) {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil || st.Size() != 32 || st.Mode().Perm() != 0o600 {
			t.Errorf("sealing.key: %v %v, want 32 bytes, mode 0600", st, err)
		}
	}

	t.Run("ok/nothing-sealed", func(t *testing.T) {
		t.Parallel()
		dir := dmShortDir(t)
		td := dmStart(t, dir, clock)
		td.trust(t, td.cert(t, "plain"), api.CertificatesPost{Name: "plain"})
		td.d.Close()
		path := empty(t, dir)
		td = dmStart(t, dir, clock)
		keyOK(t, path)
		// The new key seals.
		td.must(t, http.StatusAccepted, nil, "POST", "/1.0/certificates", api.CertificatesPost{Name: "t", Token: true})
	})

	t.Run("fail/config-sealed", func(t *testing.T) {
		t.Parallel()
		dir := dmShortDir(t)
		td := dmStart(t, dir, clock)
		td.must(t, 200, nil, "PATCH", "/1.0", `{"config":{"acme.eab.kid":"kid","acme.eab.hmac":"c2VjcmV0LWhtYWMta2V5LXRoaXJ0eS10d28tYnl0ZXMh"}}`)
		td.d.Close()
		empty(t, dir)
		if d, _, err := dmTryStart(dir, clock); err == nil {
			d.Close()
			t.Fatal("started with an empty sealing key and a sealed value in the log")
		} else if !errors.Is(err, daemon.ErrSealingKeyLost) || !strings.Contains(err.Error(), "acme.eab.hmac") {
			t.Errorf("start: %v, want ErrSealingKeyLost naming acme.eab.hmac", err)
		}
	})

	t.Run("fail/token-sealed", func(t *testing.T) {
		t.Parallel()
		dir := dmShortDir(t)
		td := dmStart(t, dir, clock)
		td.must(t, http.StatusAccepted, nil, "POST", "/1.0/certificates", api.CertificatesPost{Name: "t", Token: true})
		td.d.Close()
		path := empty(t, dir)
		d, logs, err := dmTryStart(dir, clock)
		if err == nil {
			d.Close()
			t.Fatal("started with an empty sealing key and a sealed token in the log")
		}
		if !errors.Is(err, daemon.ErrSealingKeyLost) || !strings.Contains(err.Error(), "1 token secrets") || !strings.Contains(err.Error(), path) {
			t.Errorf("start: %v, want ErrSealingKeyLost naming the file and the token\n%s", err, logs)
		}
		if st, err := os.Stat(path); err != nil || st.Size() != 0 {
			t.Errorf("the empty key file was touched: %v %v", st, err)
		}
		// The way out the error names: remove the file.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		dmStart(t, dir, clock)
		keyOK(t, path)
	})
}
