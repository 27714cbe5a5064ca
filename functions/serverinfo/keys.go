package serverinfo

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/oidc"

	"github.com/trustlog/trustlog/functions/acme"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/tokens"
)

// DefaultHTTPSAddress is where the API listens when core.https_address is unset.
const DefaultHTTPSAddress = "127.0.0.1:8443"

// DefaultPort is appended to a core.https_address without a port.
const DefaultPort = "8443"

// KeyHTTPSAddress is the HTTPS listen address, a member-local key.
const KeyHTTPSAddress = "core.https_address"

// MemberKey reports whether key names one machine, so that each member of
// a cluster of instances has its own value (as LXD's "local" scope):
// core.https_address and acme.http.port. Other keys are shared.
func MemberKey(key string) bool { return key == KeyHTTPSAddress || key == acme.KeyHTTPPort }

// maxMemberName bounds a member name, as a DNS label.
const maxMemberName = 63

// ValidateMemberName checks the name of a member: 1 to 63 letters, digits,
// '-', '_' or '.', starting with a letter or digit.
func ValidateMemberName(name string) error {
	if name == "" || len(name) > maxMemberName {
		return fmt.Errorf("member name %q must have 1 to %d characters", name, maxMemberName)
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '-' && r != '_' && r != '.') {
			return fmt.Errorf("member name %q may hold letters, digits, '-', '_' and '.', and must start with a letter or digit", name)
		}
	}
	return nil
}

// keys maps every server configuration key Trustlog knows to its validator.
// Keys under "user." are free-form. Later features add their keys here.
var keys = map[string]func(string) error{
	KeyHTTPSAddress:        func(v string) error { _, err := NormalizeListenAddress(v); return err },
	tokens.KeyExpiry:       tokens.ValidateExpiry,
	tokens.KeyAdvertise:    validateAdvertise,
	authn.KeyTrustCA:       validateBool,
	authn.KeyCRLFailClosed: validateBool,
	gate.KeyMaxStaleness:   gate.ValidateMaxStaleness,

	acme.KeyDomain:    acme.Validators[acme.KeyDomain],
	acme.KeyEmail:     acme.Validators[acme.KeyEmail],
	acme.KeyAgreeTOS:  acme.Validators[acme.KeyAgreeTOS],
	acme.KeyCAURL:     acme.Validators[acme.KeyCAURL],
	acme.KeyHTTPPort:  acme.Validators[acme.KeyHTTPPort],
	acme.KeyChallenge: acme.Validators[acme.KeyChallenge],
	acme.KeyEABKID:    acme.Validators[acme.KeyEABKID],
	acme.KeyEABHMAC:   acme.Validators[acme.KeyEABHMAC],

	oidc.KeyIssuer:         validateIssuer,
	oidc.KeyClientID:       validateText,
	oidc.KeyDeviceClientID: validateText,
	oidc.KeyAudience:       validateText,
	oidc.KeyClaim:          validateText,
	oidc.KeyGroupsClaim:    validateText,
	oidc.KeyScopes:         validateScopes,
	oidc.KeyDefaultAccess: func(v string) error {
		if v != events.AccessNone && v != events.AccessAdmin {
			return fmt.Errorf("%q must be %q or %q", v, events.AccessNone, events.AccessAdmin)
		}
		return nil
	},
}

// validateIssuer checks the form of an OIDC issuer URL; whether the
// provider answers is checked separately, by discovery.
func validateIssuer(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) issuer URL", v)
	}
	return nil
}

// validateText accepts a single token of printable, non-space characters.
func validateText(v string) error {
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q must not contain spaces or control characters", v)
		}
	}
	return nil
}

// validateScopes checks a comma- or space-separated scope list, which must
// request "openid".
func validateScopes(v string) error {
	scopes := oidc.SplitScopes(v)
	if !slices.Contains(scopes, "openid") {
		return fmt.Errorf("%q must contain the \"openid\" scope", v)
	}
	for _, sc := range scopes {
		if err := validateText(sc); err != nil {
			return err
		}
	}
	return nil
}

// validateTogether checks the rules that span keys, on the configuration a
// change would produce.
func validateTogether(next map[string]string) error {
	if next[oidc.KeyDeviceClientID] != "" && next[oidc.KeyClientID] == "" {
		return fmt.Errorf("%q cannot be set if %q is unset", oidc.KeyDeviceClientID, oidc.KeyClientID)
	}
	return nil
}

func validateBool(v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return fmt.Errorf("%q is not a boolean", v)
	}
	return nil
}

// validateAdvertise checks a comma-separated list of host:port addresses.
func validateAdvertise(v string) error {
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("address %q must be host:port", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("invalid port in %q", a)
		}
		if net.ParseIP(host) == nil && !api.ValidHostname(host) {
			return fmt.Errorf("invalid host in %q", a)
		}
	}
	return nil
}

// ValidateKey reports whether value is acceptable for key. An empty value
// (unset) is always acceptable for a known key.
func ValidateKey(key, value string) error {
	if strings.HasPrefix(key, "user.") && len(key) > len("user.") {
		return nil
	}
	check, ok := keys[key]
	if !ok {
		return fmt.Errorf("unknown configuration key %q", key)
	}
	if value == "" {
		return nil
	}
	if err := check(value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// NormalizeListenAddress turns a core.https_address value into host:port:
// a bare host or IP gets the default port, ":port" listens on every address.
func NormalizeListenAddress(v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty address")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		// No port: a bare host name or IP (IPv6 possibly in brackets).
		host = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		port = DefaultPort
	}
	if host != "" && net.ParseIP(host) == nil && !api.ValidHostname(host) {
		return "", fmt.Errorf("invalid host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("invalid port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}
