package certificates_test

import (
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/certificates"
)

// TestNameProblem: the rules of trust-store entry and TLS identity names.
func TestNameProblem(t *testing.T) {
	t.Parallel()
	const (
		slash   = `must not start with "-" or contain "/"`
		control = "must not contain control characters or line breaks"
	)
	for _, tc := range []struct{ name, want string }{
		{"", ""},
		{"alice", ""},
		{"alice@laptop", ""},
		{"a-b", ""},
		{"Ünïcødé", ""},
		{"..", ""}, // fine for an entry; identities refuse it on their own
		{strings.Repeat("x", certificates.MaxNameLength), ""},
		{strings.Repeat("é", certificates.MaxNameLength/2), ""},
		{"-x", slash},
		{"a/b", slash},
		{"../../x", slash},
		{"a\rb", control},
		{"a\nb", control},
		{"a\tb", control},
		{"\x00", control},
		{"\x1b[31m", control},
		{"\x7f", control},
		{"\u0085", control},
		{"\u2028", control},
		{"\u2029", control},
		{"a\xffb", "must be valid UTF-8"},
		{strings.Repeat("x", certificates.MaxNameLength+1), "must not be longer than 255 bytes"},
		{strings.Repeat("é", certificates.MaxNameLength/2+1), "must not be longer than 255 bytes"},
	} {
		if got := certificates.NameProblem(tc.name); got != tc.want {
			t.Errorf("NameProblem(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
