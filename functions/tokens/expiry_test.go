package tokens_test

import (
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/tokens"
)

// TestValidateExpiry: core.remote_token_expiry takes the grammar of
// package expiry (its own test covers the grammar).
func TestValidateExpiry(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"1d", "1d 12H", "30m", "5S"} {
		if err := tokens.ValidateExpiry(ok); err != nil {
			t.Errorf("ValidateExpiry(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "soon", "1h30m", "0S", "1d 1d"} {
		if err := tokens.ValidateExpiry(bad); err == nil {
			t.Errorf("ValidateExpiry(%q) accepted", bad)
		}
	}
}

// TestDefaultExpiry checks the default is valid, finite and short.
func TestDefaultExpiry(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at, err := tokens.ParseExpiry(tokens.DefaultExpiry, from)
	if err != nil {
		t.Fatalf("DefaultExpiry %q: %v", tokens.DefaultExpiry, err)
	}
	if d := at.Sub(from); d <= 0 || d > 31*24*time.Hour {
		t.Fatalf("DefaultExpiry %q lasts %v, want finite and at most a month", tokens.DefaultExpiry, d)
	}
}
