package command

import (
	"errors"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/cli/client"
)

// TestExplainRedeem: the server's refusals of a trust token keep their
// words and the *client.Error, and gain what to do; other errors pass.
func TestExplainRedeem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"used", &client.Error{Status: 403, Message: "No matching certificate add operation found"},
			"No matching certificate add operation found: the trust token is invalid or already used: ask the administrator for a new token"},
		{"malformed", &client.Error{Status: 403, Message: "not authorized"},
			"not authorized: the trust token is invalid or already used: ask the administrator for a new token"},
		{"expired", &client.Error{Status: 403, Message: "Token has expired"}, "Token has expired: ask the administrator for a new token"},
		{"other refusal", &client.Error{Status: 403, Message: "The certificate is not trusted by the CA or has been revoked"},
			"The certificate is not trusted by the CA or has been revoked"},
		{"not a refusal", &client.Error{Status: 400, Message: "Client is already trusted"}, "Client is already trusted"},
		{"no reply", errors.New("connection refused"), "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := explainRedeem(tc.err)
			if got.Error() != tc.want {
				t.Errorf("explainRedeem(%v) = %q, want %q", tc.err, got, tc.want)
			}
			var apiErr *client.Error
			if errors.As(tc.err, &apiErr) && !errors.As(got, &apiErr) {
				t.Errorf("explainRedeem(%v) lost the *client.Error", tc.err)
			}
		})
	}
}

// TestLooksLikeToken: a long base64 string given as an address is taken
// for a token; addresses and socket paths are not.
func TestLooksLikeToken(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("eyJjbGllbnRfbmFtZSI6", 4)
	for in, want := range map[string]bool{
		long:                    true,
		long + "/x+y==":         true,
		"127.0.0.1:8443":        false,
		"trust.example.com":     false,
		"https://" + long:       false,
		"/" + long:              false,
		"host-" + long[:40]:     false,
		long + ".example.com":   false,
		"[2001:db8::1]:8443":    false,
		"unix:" + long:          false,
		strings.Repeat("a", 63): false,
	} {
		if got := looksLikeToken(in); got != want {
			t.Errorf("looksLikeToken(%q) = %v, want %v", in, got, want)
		}
	}
}
