package command_test

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/expiry"
)

// TestGetClientTokenExpiry: `remote get-client-token` reads its expiry as
// core.remote_token_expiry does (LXD's grammar: "30M" minutes, "30m"
// months, "1d" a day), and a bad one is refused with the valid units.
func TestGetClientTokenExpiry(t *testing.T) {
	t.Parallel()
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	for _, tc := range []struct {
		name, in string
		want     func(now time.Time) time.Time
	}{
		{"ok/minutes", "30M", func(now time.Time) time.Time { return now.Add(30 * time.Minute) }},
		{"ok/months", "30m", func(now time.Time) time.Time { return now.AddDate(0, 30, 0) }},
		{"ok/day", "1d", func(now time.Time) time.Time { return now.AddDate(0, 0, 1) }},
		{"ok/terms", "1w 12H", func(now time.Time) time.Time { return now.AddDate(0, 0, 7).Add(12 * time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			out, errOut, err := user.run(t, "", "remote", "get-client-token", tc.in)
			after := time.Now()
			if err != nil {
				t.Fatalf("get-client-token %s: %v", tc.in, err)
			}
			exp := jwtExpiry(t, strings.TrimSpace(out))
			lo, hi := tc.want(before).Truncate(time.Second), tc.want(after)
			if exp.Before(lo) || exp.After(hi) {
				t.Errorf("get-client-token %s: exp %s, want between %s and %s", tc.in, exp, lo, hi)
			}
			if want := "Token valid until " + exp.UTC().Format(time.RFC3339); !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
		})
	}
	for _, bad := range []string{"soon", "12h", "1h30m", "0S", ""} {
		_, _, err := user.run(t, "", "remote", "get-client-token", bad)
		if err == nil || !strings.Contains(err.Error(), expiry.Units) {
			t.Errorf("get-client-token %q: err = %v, want one listing the units %q", bad, err, expiry.Units)
		}
	}
}

// jwtExpiry returns the exp claim of a JWT, unverified.
func jwtExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Exp int64 }
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return time.Unix(claims.Exp, 0)
}
