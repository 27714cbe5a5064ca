package events_test

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
)

// FuzzDecode: any stored bytes either fail to decode or give an envelope
// whose payload decodes or is refused, without panicking; a decoded
// envelope marshals and decodes again.
func FuzzDecode(f *testing.F) {
	for _, typ := range events.Types() {
		if raw, err := os.ReadFile(goldenPath(typ)); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"specversion":"1.0","type":"trustlog.token.issued.v1","data":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := events.Decode(raw)
		if err != nil {
			return
		}
		_, _ = env.Payload()
		again, err := env.Marshal()
		if err != nil {
			return
		}
		if _, err := events.Decode(again); err != nil {
			t.Fatalf("a decoded envelope does not decode after Marshal: %v", err)
		}
	})
}

// FuzzDecodeRecord: the one-pass decoder agrees with Decode followed by
// Payload on every input: same envelope, same payload, same error.
func FuzzDecodeRecord(f *testing.F) {
	for _, typ := range events.Types() {
		if raw, err := os.ReadFile(goldenPath(typ)); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/","type":"trustlog.token.issued.v1","data":null}`))
	f.Add([]byte(`{"data":{"name":"a"},"specversion":"1.0","id":"x","source":"/","type":"trustlog.certificate.trusted.v1"}`))
	// Canonical envelopes (as Marshal writes them) with the strings, arrays
	// and optional members the canonical decoder handles or refuses.
	for _, p := range []events.Payload{
		&events.CertificateTrusted{Fingerprint: "ab", Name: "a \"quoted\" \\ name/", Type: "client", Projects: nil,
			Certificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		&events.CertificateTrusted{Name: "tab\tcr\rff\fbs\b", Projects: []string{}},
		&events.CertificateTrusted{Name: "<html> & unicode é", Projects: []string{"a", "b"}},
		&events.TokenIssued{ID: "t", Addresses: []string{"127.0.0.1:8443"}, ExpiresAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), IdentityID: "i"},
		&events.TokenIssued{ID: "t", Projects: []string{}},
		&events.TokenRedeemed{ID: "t", Name: "n", Fingerprint: "f"},
		&events.TokenRevoked{ID: "t", Name: "n"},
		&events.CertificateRemoved{Fingerprint: "f", Name: "n"},
		&events.ConfigChanged{Key: "k", Value: "v"},
	} {
		for _, actor := range []events.Actor{{}, {Name: "n", Method: "tls", Address: "127.0.0.1:1"}} {
			env, err := events.New("id", "/src", time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)), actor, p)
			if err != nil {
				f.Fatal(err)
			}
			env.PrevHash = "00"
			raw, err := env.Marshal()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, p, err := events.DecodeRecord(raw)
		want, werr := events.Decode(raw)
		var wp events.Payload
		if werr == nil {
			wp, werr = want.Payload()
			want.Data = nil
		}
		if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("DecodeRecord error %v, Decode+Payload error %v", err, werr)
		}
		if werr != nil && wp == nil {
			return
		}
		if !reflect.DeepEqual(env, want) {
			t.Fatalf("envelopes differ:\n%+v\n%+v", env, want)
		}
		if !reflect.DeepEqual(p, wp) {
			t.Fatalf("payloads differ:\n%+v\n%+v", p, wp)
		}
	})
}
