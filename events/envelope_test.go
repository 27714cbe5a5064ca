package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
)

func TestNew(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 6, 6, 7, 0, time.FixedZone("CET", 3600))
	p := events.ConfigChanged{Key: "core.https_address", Value: ":8443"}
	env, err := events.New("id-1", "urn:trustlog:test", at, events.Actor{Name: "alice", Method: "unix"}, p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := events.Envelope{
		SpecVersion:     "1.0",
		ID:              "id-1",
		Source:          "urn:trustlog:test",
		Type:            "trustlog.config.changed.v1",
		Subject:         "trustlog.config.core.https_address",
		Time:            at.UTC(),
		DataContentType: "application/json",
		Data:            json.RawMessage(`{"key":"core.https_address","value":":8443"}`),
		ActorName:       "alice",
		ActorMethod:     "unix",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("New mismatch (-want +got):\n%s", diff)
	}
	if env.Time.Location() != time.UTC {
		t.Errorf("New kept time zone %v, want UTC", env.Time.Location())
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	valid := map[string]any{
		"specversion": "1.0",
		"id":          "id-1",
		"source":      "urn:trustlog:test",
		"type":        "trustlog.config.changed.v1",
		"time":        "2026-03-04T05:06:07Z",
		"data":        map[string]string{"key": "k", "value": "v"},
		"prevhash":    "",
	}
	with := func(key string, value any) []byte {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		if value == nil {
			delete(m, key)
		} else {
			m[key] = value
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		raw     []byte
		wantErr string // substring; "" means success
	}{
		{name: "ok/minimal", raw: with("", nil)},
		{name: "ok/unknown type decodes", raw: with("type", "trustlog.future.thing.v9")},
		{name: "fail/missing id", raw: with("id", nil), wantErr: "without id"},
		{name: "fail/empty id", raw: with("id", ""), wantErr: "without id"},
		{name: "fail/missing source", raw: with("source", nil), wantErr: "without source"},
		{name: "fail/missing type", raw: with("type", nil), wantErr: "without type"},
		{name: "fail/missing specversion", raw: with("specversion", nil), wantErr: "unsupported specversion"},
		{name: "fail/specversion 0.3", raw: with("specversion", "0.3"), wantErr: "unsupported specversion"},
		{name: "fail/specversion 1.1", raw: with("specversion", "1.1"), wantErr: "unsupported specversion"},
		{name: "fail/bad JSON", raw: []byte(`{"specversion":"1.0",`), wantErr: "decode envelope"},
		{name: "fail/not an object", raw: []byte(`["1.0"]`), wantErr: "decode envelope"},
		{name: "fail/empty", raw: nil, wantErr: "decode envelope"},
		{name: "fail/bad time", raw: with("time", "yesterday"), wantErr: "decode envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := events.Decode(tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if env.ID != "id-1" {
					t.Errorf("ID = %q, want id-1", env.ID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decode error = %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(events.Envelope{}, env); diff != "" {
				t.Errorf("Decode returned a partial envelope on error:\n%s", diff)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		typ         string
		data        string
		want        events.Payload
		wantUnknown bool
		wantErr     bool
	}{
		{
			name: "ok/config changed",
			typ:  "trustlog.config.changed.v1",
			data: `{"key":"k","value":"v"}`,
			want: &events.ConfigChanged{Key: "k", Value: "v"},
		},
		{
			name: "ok/extra fields are ignored",
			typ:  "trustlog.certificate.removed.v1",
			data: `{"fingerprint":"ab","name":"n","future":1}`,
			want: &events.CertificateRemoved{Fingerprint: "ab", Name: "n"},
		},
		{name: "fail/unknown type", typ: "trustlog.certificate.trusted.v2", data: `{}`, wantUnknown: true},
		{name: "fail/empty type", typ: "", data: `{}`, wantUnknown: true},
		{name: "fail/bad data", typ: "trustlog.config.changed.v1", data: `{"key":1}`, wantErr: true},
		{name: "fail/no data", typ: "trustlog.config.changed.v1", data: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := events.Envelope{Type: tt.typ, Data: json.RawMessage(tt.data)}
			got, err := env.Payload()
			switch {
			case tt.wantUnknown:
				if !errors.Is(err, events.ErrUnknownType) {
					t.Fatalf("Payload error = %v, want ErrUnknownType", err)
				}
			case tt.wantErr:
				if err == nil || errors.Is(err, events.ErrUnknownType) {
					t.Fatalf("Payload error = %v, want a decode error", err)
				}
			default:
				if err != nil {
					t.Fatalf("Payload: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Payload mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	want := []string{
		"trustlog.acme.challenge.cleaned.v1",
		"trustlog.acme.challenge.presented.v1",
		"trustlog.acme.renewal.v1",
		"trustlog.audit.denied.v1",
		"trustlog.audit.denied.v2",
		"trustlog.certificate.removed.v1",
		"trustlog.certificate.trusted.v1",
		"trustlog.certificate.updated.v1",
		"trustlog.config.changed.v1",
		"trustlog.config.member.changed.v1",
		"trustlog.identity.activated.v1",
		"trustlog.identity.created.v1",
		"trustlog.identity.granted.v1",
		"trustlog.identity.removed.v1",
		"trustlog.pki.ca.changed.v1",
		"trustlog.pki.crl.revocations.v1",
		"trustlog.pki.crl.updated.v1",
		"trustlog.server.certificate.rotated.v1",
		"trustlog.token.expired.v1",
		"trustlog.token.issued.v1",
		"trustlog.token.redeemed.v1",
		"trustlog.token.revoked.v1",
	}
	if diff := cmp.Diff(want, events.Types()); diff != "" {
		t.Errorf("Types mismatch (-want +got):\n%s", diff)
	}
	for _, typ := range events.Types() {
		env := events.Envelope{Type: typ, Data: json.RawMessage(`{}`)}
		p, err := env.Payload()
		if err != nil {
			t.Errorf("Payload(%s): %v", typ, err)
			continue
		}
		if p.EventType() != typ {
			t.Errorf("registry maps %s to a payload of type %s", typ, p.EventType())
		}
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "ok/empty", raw: "", want: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{name: "ok/abc", raw: "abc", want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := events.Hash([]byte(tt.raw)); got != tt.want {
				t.Errorf("Hash(%q) = %s, want %s", tt.raw, got, tt.want)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    events.Payload
		want string
	}{
		{name: "ok/fingerprint", p: events.CertificateTrusted{Fingerprint: "0ce6ffaa"}, want: "trustlog.cert.0ce6ffaa"},
		{name: "ok/updated uses old fingerprint", p: events.CertificateUpdated{Fingerprint: "aa", NewFingerprint: "bb"}, want: "trustlog.cert.aa"},
		{name: "ok/removed", p: events.CertificateRemoved{Fingerprint: "aa"}, want: "trustlog.cert.aa"},
		{name: "ok/config key keeps dots", p: events.ConfigChanged{Key: "core.https_address"}, want: "trustlog.config.core.https_address"},
		{name: "ok/star", p: events.CertificateTrusted{Fingerprint: "a*b"}, want: "trustlog.cert.a_b"},
		{name: "ok/greater than", p: events.CertificateTrusted{Fingerprint: "a>"}, want: "trustlog.cert.a_"},
		{name: "ok/space", p: events.ConfigChanged{Key: "a b"}, want: "trustlog.config.a_b"},
		{name: "ok/tab and newline", p: events.ConfigChanged{Key: "a\tb\n"}, want: "trustlog.config.a_b_"},
		{name: "ok/non-ASCII", p: events.ConfigChanged{Key: "clé"}, want: "trustlog.config.cl_"},
		{name: "ok/DEL", p: events.ConfigChanged{Key: "a\x7f"}, want: "trustlog.config.a_"},
		{name: "ok/wildcards only", p: events.ConfigChanged{Key: "*.>"}, want: "trustlog.config._._"},
		{name: "ok/empty", p: events.CertificateRemoved{}, want: "trustlog.cert._"},
		{name: "ok/outer dots trimmed", p: events.ConfigChanged{Key: ".core.x."}, want: "trustlog.config.core.x"},
		{name: "ok/only dots", p: events.ConfigChanged{Key: ".."}, want: "trustlog.config._"},
		{name: "ok/empty inner token", p: events.ConfigChanged{Key: "a..b"}, want: "trustlog.config.a._.b"},
		{name: "ok/member config", p: events.ConfigMemberChanged{Member: "t1", Key: "core.https_address"}, want: "trustlog.config.member.t1.core.https_address"},
		{name: "ok/member name with dots is one token", p: events.ConfigMemberChanged{Member: "host.example.com", Key: "acme.http.port"}, want: "trustlog.config.member.host_example_com.acme.http.port"},
		{name: "ok/member name wildcards", p: events.ConfigMemberChanged{Member: "*>", Key: "k"}, want: "trustlog.config.member.__.k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.p.EventSubject()
			if got != tt.want {
				t.Errorf("EventSubject() = %q, want %q", got, tt.want)
			}
			if !validSubject(got) {
				t.Errorf("EventSubject() = %q is not a valid literal NATS subject", got)
			}
		})
	}
}

// validSubject reports whether s is a literal NATS subject with no empty
// token, no wildcard and no whitespace or non-ASCII byte.
func validSubject(s string) bool {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '*' || r == '>' {
			return false
		}
	}
	return true
}
