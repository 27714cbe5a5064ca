package command

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/functions/expiry"
)

func (e *env) remoteClientTokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get-client-token <expiry>",
		Short: "Print a JWT signed by the client key, valid for expiry (as core.remote_token_expiry: 30M, 12H, 1d)",
		Long: `Print a JWT signed by the client key, valid for expiry.

The expiry takes the syntax of core.remote_token_expiry, as LXD and Incus
write it: space-separated terms of a number and a unit, ` + expiry.Units + `.
Units are case-sensitive: "30M" is thirty minutes, "30m" thirty months.
The instant the token expires is printed on stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			until, err := expiry.Parse(args[0], now)
			if err != nil {
				return err
			}
			pair, err := e.conf.ClientCertificate(e.stderr)
			if err != nil {
				return err
			}
			tok, err := ClientJWT(pair.PrivateKey.(crypto.Signer), client.Fingerprint(pair.Leaf), now, until.Sub(now))
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, tok)
			fmt.Fprintf(e.stderr, "Token valid until %s\n", until.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

// ClientJWT makes a bearer token from a client key, as Incus does: claims
// sub (the certificate fingerprint), iat, nbf and exp, signed ES384 for an
// ECDSA P-384 key (ES256/ES512 for the other curves) or RS256 for RSA.
func ClientJWT(key crypto.Signer, fingerprint string, now time.Time, validity time.Duration) (string, error) {
	alg, hash := "", crypto.Hash(0)
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256:
			alg, hash = "ES256", crypto.SHA256
		case 384:
			alg, hash = "ES384", crypto.SHA384
		case 521:
			alg, hash = "ES512", crypto.SHA512
		}
	case *rsa.PrivateKey:
		alg, hash = "RS256", crypto.SHA256
	}
	if alg == "" {
		return "", errors.New("client key type cannot sign a token")
	}
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{"sub": fingerprint, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(validity).Unix()})
	signed := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	var digest []byte
	switch hash {
	case crypto.SHA256:
		s := sha256.Sum256([]byte(signed))
		digest = s[:]
	case crypto.SHA384:
		s := sha512.Sum384([]byte(signed))
		digest = s[:]
	default:
		s := sha512.Sum512([]byte(signed))
		digest = s[:]
	}
	var sig []byte
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return "", err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
	} else {
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), hash, digest); err != nil {
			return "", err
		}
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
