package authn

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseClientJWT: the certificate-JWT parser never panics, and what it
// accepts has a subject, an expiry after now and three parts.
func FuzzParseClientJWT(f *testing.F) {
	f.Add("eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJhYiIsImV4cCI6NDEwMjQ0NDgwMH0.c2ln")
	f.Add("1234567")
	f.Add("a.b.c")
	f.Add("..")
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, tok string) {
		sub, _, exp, signed, _, err := parseClientJWT(tok, now)
		if err != nil {
			return
		}
		if sub == "" || !exp.After(now) || strings.Count(tok, ".") != 2 || len(signed) == 0 {
			t.Fatalf("accepted %q: sub %q exp %v", tok, sub, exp)
		}
	})
}
