package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Fixed envelope attributes of every golden file.
var (
	goldenID       = "0b5f7a3e-8c1d-4e2f-9a6b-3c4d5e6f7a8b"
	goldenSource   = "urn:trustlog:node:golden"
	goldenTime     = time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
	goldenActor    = events.Actor{Name: "trustlogd", Method: "tls", Address: "127.0.0.1:51234"}
	goldenPrevHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// Two fixed self-signed ECDSA P-384 client certificates and their SHA-256
// fingerprints, so that the golden files are reproducible.
const (
	goldenFP1  = "0ce6ffaada4cda695a854ffed8b0e83544b53323fcd0e1e31c95d0dd92eba486"
	goldenPEM1 = `-----BEGIN CERTIFICATE-----
MIIBgDCCAQegAwIBAgIBATAKBggqhkjOPQQDAzAXMRUwEwYDVQQDDAxhbGljZUBs
YXB0b3AwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjAXMRUwEwYDVQQD
DAxhbGljZUBsYXB0b3AwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAASdy/0BUljZwADy
Wcyb5+msiNez23G96zUWFyPjwX9GSqGqZxoadkdihhESxeuFk4lCzp3pKzYcDAdf
XAlZYgSIEqXFbCyw/AuoUIuRaHx+WSOi87RXh+NDrrkfT9Do5KajJzAlMA4GA1Ud
DwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDAjAKBggqhkjOPQQDAwNnADBk
AjBBZWuUp2ssqaNALjVE9ah+XOTBip/hPH9CYHNAy2+ehizXzpvky5Vq3Z6heQFV
Z1cCMHVECDkZZCwihmKCSxv35uLwTAcWa3CIn5i0uCjvB4j3AHjzvVDm02Yr76fb
uQmJMw==
-----END CERTIFICATE-----
`
	goldenFP2  = "6f83f290a5dda910d74ae57285605ad5ef8800d03b67027cb090097e5e421ac4"
	goldenPEM2 = `-----BEGIN CERTIFICATE-----
MIIBhjCCAQugAwIBAgIBATAKBggqhkjOPQQDAzAZMRcwFQYDVQQDDA5hbGljZUBs
YXB0b3AtMjAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAwMDBaMBkxFzAVBgNV
BAMMDmFsaWNlQGxhcHRvcC0yMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEmhNrEsTR
ucAnrSonGM3rcfO2cbUkHkMs/zWPttnxsFfGm+99YLay2Mjf77ZXXpjTnjrKiw+X
ETh1LVWVoXLtMVwGN7lfp93rkbsDwbgAcSxztsCQIFgzJT8Hmh+SBYpxoycwJTAO
BgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwIwCgYIKoZIzj0EAwMD
aQAwZgIxAPgY1hgsTNC++hacNfrszmY14sJpwfZQcxuuvourrmq071HXHjKHpRop
PJcip1i+MAIxAPMAfjoa+FrID6+7wwIg2gMncA0/5AM+75uehQNA2+WBf/IcjIeD
FLpPz7SoBPGGiw==
-----END CERTIFICATE-----
`
)

// goldenPayloads holds one payload per event type and version. Every type
// that events.Types() lists must appear here, with a file
// testdata/<type>.json. Old versions stay here forever.
var goldenPayloads = []events.Payload{
	&events.CertificateTrusted{
		Fingerprint: goldenFP1,
		Name:        "alice-laptop",
		Type:        events.CertificateTypeClient,
		Restricted:  true,
		Projects:    []string{"default", "web"},
		Description: "Alice's laptop",
		Certificate: goldenPEM1,
	},
	&events.CertificateUpdated{
		Fingerprint:    goldenFP1,
		NewFingerprint: goldenFP2,
		Name:           "alice-laptop-2",
		Restricted:     false,
		Projects:       []string{},
		Description:    "Alice's new laptop",
		Certificate:    goldenPEM2,
	},
	&events.CertificateRemoved{
		Fingerprint: goldenFP2,
		Name:        "alice-laptop-2",
	},
	&events.ConfigChanged{
		Key:   "core.https_address",
		Value: "127.0.0.1:8443",
	},
	&events.ConfigMemberChanged{
		Member: "t2",
		Key:    "core.https_address",
		Value:  "10.0.0.12:8443",
	},
	&events.TokenIssued{
		ID:           "6f1c9a52-3b7e-4d8a-9c21-0e5f4a7b8c90",
		Name:         "bob-workstation",
		Type:         events.CertificateTypeClient,
		Restricted:   true,
		Projects:     []string{"web"},
		Description:  "Bob's workstation",
		SecretHash:   "9b1d0c2e7f4a8b3c6d5e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e",
		SealedSecret: "3q2+7wAAAAAAAAAAc2VhbGVkIHNlY3JldCBnb2VzIGhlcmU=",
		Fingerprint:  goldenFP1,
		Addresses:    []string{"192.0.2.10:8443", "[2001:db8::10]:8443"},
		ExpiresAt:    time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	},
	&events.TokenRedeemed{
		ID:          "6f1c9a52-3b7e-4d8a-9c21-0e5f4a7b8c90",
		Name:        "bob-workstation",
		Fingerprint: goldenFP2,
	},
	&events.TokenRevoked{
		ID:   "6f1c9a52-3b7e-4d8a-9c21-0e5f4a7b8c90",
		Name: "bob-workstation",
	},
	&events.TokenExpired{
		ID:   "6f1c9a52-3b7e-4d8a-9c21-0e5f4a7b8c90",
		Name: "bob-workstation",
	},
	&events.CAChanged{
		Certificate: goldenPEM1,
		Fingerprint: goldenFP1,
	},
	&events.CRLUpdated{
		IssuerFingerprint: goldenFP1,
		Number:            "7",
		ThisUpdate:        time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
		NextUpdate:        time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC),
		SHA256:            "5f2b7a9c0d1e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e",
		Total:             3,
		Parts:             2,
		Revoked:           []string{"1f", "2a3b"},
	},
	&events.CRLRevocations{
		IssuerFingerprint: goldenFP1,
		SHA256:            "5f2b7a9c0d1e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e",
		Part:              2,
		Revoked:           []string{"c0ffee"},
	},
	&events.IdentityCreated{
		ID:         "3f1e2d4c5b6a79880f1e2d3c4b5a6978",
		AuthMethod: events.IdentityOIDC,
		Name:       "alice@example.com",
		Issuer:     "https://idp.example.com/",
		Subject:    "248289761001",
	},
	&events.IdentityGranted{
		ID:       "3f1e2d4c5b6a79880f1e2d3c4b5a6978",
		Name:     "alice@example.com",
		Access:   events.AccessRestricted,
		Projects: []string{"web"},
	},
	&events.IdentityActivated{
		ID:          "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		Name:        "ci-runner",
		Fingerprint: goldenFP1,
		Certificate: goldenPEM1,
	},
	&events.IdentityRemoved{
		ID:   "3f1e2d4c5b6a79880f1e2d3c4b5a6978",
		Name: "alice@example.com",
	},
	&events.AccessDenied{
		Kind:        events.DeniedRedemption,
		ActorName:   goldenFP2,
		ActorMethod: "untrusted",
		Address:     "198.51.100.7",
		Route:       "POST /1.0/certificates",
		Status:      403,
		Count:       42,
		First:       time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
		Last:        time.Date(2026, 11, 22, 9, 0, 59, 0, time.UTC),
	},
	&events.AccessDeniedSummary{
		First: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
		Last:  time.Date(2026, 11, 22, 9, 0, 59, 0, time.UTC),
		Count: 1049,
		Callers: []events.DeniedCaller{
			{
				Kind: events.DeniedRedemption, ActorName: goldenFP2, ActorMethod: "untrusted", Address: "198.51.100.7",
				Route: "POST /1.0/certificates", Status: 403, Count: 1000,
				First: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), Last: time.Date(2026, 11, 22, 9, 0, 59, 0, time.UTC),
			},
			{
				Kind: events.DeniedAdmin, ActorName: "ci-runner", ActorMethod: "tls", Address: "2001:db8::7",
				Route: "PATCH /1.0", Status: 403, Count: 7,
				First: time.Date(2026, 11, 22, 9, 0, 12, 0, time.UTC), Last: time.Date(2026, 11, 22, 9, 0, 40, 0, time.UTC),
			},
		},
		Others: 42,
	},
	&events.ACMEChallengePresented{
		Domain:  "trust.example.com",
		Token:   "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
		KeyAuth: "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI",
	},
	&events.ACMEChallengeCleaned{
		Domain: "trust.example.com",
		Token:  "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
	},
	&events.ServerCertificateRotated{
		Fingerprint: goldenFP1,
		Chain:       goldenPEM1,
		Domains:     []string{"trust.example.com"},
		NotAfter:    time.Date(2027, 2, 20, 9, 0, 0, 0, time.UTC),
		Source:      "acme",
	},
	&events.ACMERenewal{
		Outcome:     events.RenewalFailed,
		Domains:     []string{"trust.example.com"},
		Error:       "acme: obtain trust.example.com: rate limited",
		NextAttempt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		Instance:    "/trustlog/node-1",
	},
}

func goldenPath(typ string) string { return filepath.Join("testdata", typ+".json") }

// goldenBytes encodes p as a stored envelope with the fixed attributes.
func goldenBytes(t *testing.T, p events.Payload) []byte {
	t.Helper()
	env, err := events.New(goldenID, goldenSource, goldenTime, goldenActor, p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.PrevHash = goldenPrevHash
	raw, err := env.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return raw
}

// readGolden returns the stored envelope bytes of a golden file: the file
// is those bytes followed by one newline.
func readGolden(t *testing.T, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPath(typ))
	if err != nil {
		t.Fatalf("read golden: %v (run go test ./events -run TestGolden -update)", err)
	}
	raw, ok := bytes.CutSuffix(b, []byte("\n"))
	if !ok {
		t.Fatalf("%s: golden file must end with one newline", goldenPath(typ))
	}
	return raw
}

func TestGolden(t *testing.T) {
	for _, want := range goldenPayloads {
		t.Run(want.EventType(), func(t *testing.T) {
			if *update {
				raw := goldenBytes(t, want)
				if err := os.WriteFile(goldenPath(want.EventType()), append(raw, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw := readGolden(t, want.EventType())

			env, err := events.Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			wantEnv := events.Envelope{
				SpecVersion:     events.SpecVersion,
				ID:              goldenID,
				Source:          goldenSource,
				Type:            want.EventType(),
				Subject:         want.EventSubject(),
				Time:            goldenTime,
				DataContentType: "application/json",
				ActorName:       goldenActor.Name,
				ActorMethod:     goldenActor.Method,
				ActorAddress:    goldenActor.Address,
				PrevHash:        goldenPrevHash,
			}
			if diff := cmp.Diff(wantEnv, env, cmp.FilterPath(func(p cmp.Path) bool {
				return p.String() == "Data"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("envelope mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(goldenActor, env.Actor()); diff != "" {
				t.Errorf("Actor() mismatch (-want +got):\n%s", diff)
			}

			got, err := env.Payload()
			if err != nil {
				t.Fatalf("Payload: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("payload mismatch (-want +got):\n%s", diff)
			}

			// Every field of the stored data is known to the payload type:
			// a renamed JSON tag would otherwise drop data silently.
			strict := json.NewDecoder(bytes.NewReader(env.Data))
			strict.DisallowUnknownFields()
			if err := strict.Decode(got); err != nil {
				t.Errorf("data has fields the payload type does not know: %v", err)
			}

			again, err := env.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(again, raw) {
				t.Errorf("decoded envelope re-encodes differently:\n got %s\nwant %s", again, raw)
			}
			if fresh := goldenBytes(t, got); !bytes.Equal(fresh, raw) {
				t.Errorf("decoded payload re-encodes differently:\n got %s\nwant %s", fresh, raw)
			}
		})
	}
}

func TestGoldenCoversTypes(t *testing.T) {
	var cased []string
	for _, p := range goldenPayloads {
		cased = append(cased, p.EventType())
	}
	slices.Sort(cased)
	if diff := cmp.Diff(events.Types(), cased); diff != "" {
		t.Errorf("golden cases differ from events.Types() (-types +cases):\n%s", diff)
	}

	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, f := range files {
		onDisk = append(onDisk, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	if diff := cmp.Diff(events.Types(), onDisk); diff != "" {
		t.Errorf("golden files differ from events.Types() (-types +files):\n%s", diff)
	}
}

// TestGoldenCloudEvents checks every golden envelope against the
// CloudEvents SDK's own reading of the 1.0 specification.
func TestGoldenCloudEvents(t *testing.T) {
	for _, typ := range events.Types() {
		t.Run(typ, func(t *testing.T) {
			raw := readGolden(t, typ)
			var ev ce.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("CloudEvents SDK cannot read the envelope: %v", err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("CloudEvents SDK rejects the envelope: %v", err)
			}
			env, err := events.Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := map[string]any{
				"specversion":     ev.SpecVersion(),
				"id":              ev.ID(),
				"source":          ev.Source(),
				"type":            ev.Type(),
				"subject":         ev.Subject(),
				"time":            ev.Time(),
				"datacontenttype": ev.DataContentType(),
				"data":            string(ev.Data()),
				"extensions":      ev.Extensions(),
			}
			want := map[string]any{
				"specversion":     events.SpecVersion,
				"id":              env.ID,
				"source":          env.Source,
				"type":            env.Type,
				"subject":         env.Subject,
				"time":            env.Time,
				"datacontenttype": env.DataContentType,
				"data":            string(env.Data),
				"extensions": map[string]any{
					"actorname":    env.ActorName,
					"actormethod":  env.ActorMethod,
					"actoraddress": env.ActorAddress,
					"prevhash":     env.PrevHash,
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CloudEvents SDK reads the envelope differently (-want +got):\n%s", diff)
			}
		})
	}
}
