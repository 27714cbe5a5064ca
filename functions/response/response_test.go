package response_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/response"
)

// envelopeKeys is the key order of every envelope (spec §1.1).
var envelopeKeys = []string{"type", "status", "status_code", "operation", "error_code", "error", "metadata"}

// topKeys returns the keys of the JSON object raw, in the order they appear.
func topKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("bad JSON %s: %v", raw, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("bad JSON %s: %v", raw, err)
		}
	}
	return keys
}

// reply is what a recorder saw, decoded.
type reply struct {
	Code   int
	Header http.Header
	Raw    []byte
	Env    map[string]any
}

func record(t *testing.T, write func(w http.ResponseWriter, r *http.Request)) reply {
	t.Helper()
	rec := httptest.NewRecorder()
	write(rec, httptest.NewRequest("GET", "/1.0/x", nil))
	raw := rec.Body.Bytes()
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	if got := topKeys(t, raw); !cmp.Equal(got, envelopeKeys) {
		t.Errorf("envelope keys = %v, want %v", got, envelopeKeys)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return reply{Code: rec.Code, Header: rec.Header(), Raw: raw, Env: env}
}

type unencodable struct{}

func (unencodable) MarshalJSON() ([]byte, error) { return nil, errors.New("secret cause") }

// TestEnvelope checks every kind of reply field by field, header by header.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	op := api.Operation{ID: "0b5e2f64-2a8c-4c4e-9a53-3c5f1d8e6f11", Class: "token", Status: "Running", StatusCode: 103,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Resources: map[string][]string{}, Metadata: map[string]any{}}
	for _, tc := range []struct {
		name       string
		write      func(w http.ResponseWriter, r *http.Request)
		wantCode   int
		wantEnv    map[string]any
		wantHeader map[string]string
	}{
		{
			name:     "ok/sync",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.Sync(w, []string{"/1.0"}) },
			wantCode: 200,
			wantEnv: map[string]any{"type": "sync", "status": "Success", "status_code": 200.0, "operation": "",
				"error_code": 0.0, "error": "", "metadata": []any{"/1.0"}},
			wantHeader: map[string]string{"X-Content-Type-Options": "", "Location": "", "ETag": ""},
		},
		{
			name:     "ok/sync nil metadata",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.Sync(w, nil) },
			wantCode: 200,
			wantEnv: map[string]any{"type": "sync", "status": "Success", "status_code": 200.0, "operation": "",
				"error_code": 0.0, "error": "", "metadata": nil},
		},
		{
			name:     "ok/empty sync",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.EmptySync(w) },
			wantCode: 200,
			wantEnv: map[string]any{"type": "sync", "status": "Success", "status_code": 200.0, "operation": "",
				"error_code": 0.0, "error": "", "metadata": map[string]any{}},
		},
		{
			name: "ok/sync with etag",
			write: func(w http.ResponseWriter, _ *http.Request) {
				response.SyncETag(w, map[string]any{"config": map[string]string{"a": "b"}}, map[string]string{"a": "b"})
			},
			wantCode: 200,
			wantEnv: map[string]any{"type": "sync", "status": "Success", "status_code": 200.0, "operation": "",
				"error_code": 0.0, "error": "", "metadata": map[string]any{"config": map[string]any{"a": "b"}}},
			wantHeader: map[string]string{"ETag": `"` + sha256Hex(`{"a":"b"}`) + `"`},
		},
		{
			name:     "ok/created",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.Created(w, "/1.0/certificates/abc") },
			wantCode: 201,
			wantEnv: map[string]any{"type": "sync", "status": "Success", "status_code": 200.0, "operation": "",
				"error_code": 0.0, "error": "", "metadata": nil},
			wantHeader: map[string]string{"Location": "/1.0/certificates/abc"},
		},
		{
			name:     "ok/async",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.Async(w, op) },
			wantCode: 202,
			wantEnv: map[string]any{"type": "async", "status": "Operation created", "status_code": 100.0,
				"operation": "/1.0/operations/" + op.ID, "error_code": 0.0, "error": "", "metadata": map[string]any{
					"id": op.ID, "class": "token", "description": "", "created_at": "2026-01-02T03:04:05Z",
					"updated_at": "2026-01-02T03:04:05Z", "status": "Running", "status_code": 103.0,
					"resources": map[string]any{}, "metadata": map[string]any{}, "may_cancel": false, "err": "", "location": "",
				}},
			wantHeader: map[string]string{"Location": "/1.0/operations/" + op.ID},
		},
		{
			name: "ok/error",
			write: func(w http.ResponseWriter, r *http.Request) {
				response.Fail(w, r, nil, response.NotFound("Certificate not found"))
			},
			wantCode: 404,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 404.0, "error": "Certificate not found", "metadata": nil},
			wantHeader: map[string]string{"X-Content-Type-Options": "nosniff"},
		},
		{
			name: "ok/error wrapped",
			write: func(w http.ResponseWriter, r *http.Request) {
				response.Fail(w, r, nil, fmt.Errorf("deciding: %w", response.Conflict("Certificate already in trust store")))
			},
			wantCode: 409,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 409.0, "error": "Certificate already in trust store", "metadata": nil},
			wantHeader: map[string]string{"X-Content-Type-Options": "nosniff"},
		},
		{
			name:     "ok/error forbidden default",
			write:    func(w http.ResponseWriter, r *http.Request) { response.Fail(w, r, nil, response.ErrForbidden) },
			wantCode: 403,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 403.0, "error": "not authorized", "metadata": nil},
			wantHeader: map[string]string{"X-Content-Type-Options": "nosniff"},
		},
		{
			name: "ok/error errorf",
			write: func(w http.ResponseWriter, r *http.Request) {
				response.Fail(w, r, nil, response.Errorf(412, "x %d", 7))
			},
			wantCode: 412,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 412.0, "error": "x 7", "metadata": nil},
		},
		{
			name: "ok/error body too large",
			write: func(w http.ResponseWriter, r *http.Request) {
				response.Fail(w, r, nil, fmt.Errorf("read: %w", &http.MaxBytesError{Limit: response.MaxBody}))
			},
			wantCode: 413,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 413.0, "error": "request body larger than 1048576 bytes", "metadata": nil},
			wantHeader: map[string]string{"X-Content-Type-Options": "nosniff"},
		},
		{
			name:     "ok/metadata that cannot be encoded is a bare 500",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.Sync(w, unencodable{}) },
			wantCode: 500,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 500.0, "error": "internal server error", "metadata": nil},
		},
		{
			name:     "ok/metadata NaN is a bare 500",
			write:    func(w http.ResponseWriter, _ *http.Request) { response.Sync(w, math.NaN()) },
			wantCode: 500,
			wantEnv: map[string]any{"type": "error", "status": "", "status_code": 0.0, "operation": "",
				"error_code": 500.0, "error": "internal server error", "metadata": nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := record(t, tc.write)
			if got.Code != tc.wantCode {
				t.Errorf("HTTP %d, want %d", got.Code, tc.wantCode)
			}
			if diff := cmp.Diff(tc.wantEnv, got.Env); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			for k, v := range tc.wantHeader {
				if h := got.Header.Get(k); h != v {
					t.Errorf("header %s = %q, want %q", k, h, v)
				}
			}
			if !bytes.HasSuffix(got.Raw, []byte("}\n")) {
				t.Errorf("body does not end with a newline: %q", got.Raw)
			}
		})
	}
}

// TestFailHidesInternalErrors checks that an error which is not a
// *response.Error is logged with its cause and sent as a bare 500.
func TestFailHidesInternalErrors(t *testing.T) {
	t.Parallel()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	cause := errors.New("nats: connection to 10.0.0.7 refused, key=hunter2")
	got := record(t, func(w http.ResponseWriter, r *http.Request) { response.Fail(w, r, log, cause) })
	if got.Code != 500 || got.Env["error"] != "internal server error" || got.Env["error_code"] != 500.0 {
		t.Errorf("reply = %d %s", got.Code, got.Raw)
	}
	if bytes.Contains(got.Raw, []byte("hunter2")) || bytes.Contains(got.Raw, []byte("10.0.0.7")) {
		t.Errorf("internal cause leaked: %s", got.Raw)
	}
	if got.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("no nosniff header")
	}
	if !strings.Contains(logBuf.String(), "hunter2") || !strings.Contains(logBuf.String(), "path=/1.0/x") {
		t.Errorf("cause not logged: %q", logBuf.String())
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestETag checks the tag is the hex SHA-256 of the JSON encoding, as
// Incus computes it.
func TestETag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		v       any
		want    string
		wantErr bool
	}{
		{name: "ok/map keys sorted", v: map[string]string{"b": "2", "a": "1"}, want: sha256Hex(`{"a":"1","b":"2"}`)},
		{name: "ok/empty map", v: map[string]string{}, want: sha256Hex(`{}`)},
		{name: "ok/nil map", v: map[string]string(nil), want: sha256Hex(`null`)},
		{name: "ok/struct", v: api.Certificate{Name: "n", Projects: []string{}}, want: sha256Hex(
			`{"name":"n","type":"","restricted":false,"projects":[],"certificate":"","description":"","fingerprint":""}`)},
		{name: "fail/unencodable", v: unencodable{}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := response.ETag(tc.v)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ETag = %q, want %q", got, tc.want)
			}
		})
	}
}

var etagHeader = regexp.MustCompile(`^"[0-9a-f]{64}"$`)

// TestCheckETag covers If-Match: absent, quoted or bare, right or wrong.
func TestCheckETag(t *testing.T) {
	t.Parallel()
	v := map[string]string{"core.https_address": "127.0.0.1:8443"}
	have, err := response.ETag(v)
	if err != nil {
		t.Fatal(err)
	}
	if !etagHeader.MatchString(`"` + have + `"`) {
		t.Fatalf("ETag %q is not 64 lowercase hex digits", have)
	}
	for _, tc := range []struct {
		name    string
		ifMatch string
		wantErr string
	}{
		{name: "ok/no if-match", ifMatch: ""},
		{name: "ok/quoted", ifMatch: `"` + have + `"`},
		{name: "ok/bare", ifMatch: have},
		{name: "fail/wrong", ifMatch: `"abc"`, wantErr: "ETag doesn't match: " + have + " vs abc"},
		{name: "fail/other object", ifMatch: `"` + sha256Hex(`{}`) + `"`, wantErr: "ETag doesn't match: " + have + " vs " + sha256Hex(`{}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("PUT", "/1.0", nil)
			if tc.ifMatch != "" {
				r.Header.Set("If-Match", tc.ifMatch)
			}
			err := response.CheckETag(r, v)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckETag: %v", err)
				}
				return
			}
			var e *response.Error
			if !errors.As(err, &e) || e.Status != http.StatusPreconditionFailed || e.Message != tc.wantErr {
				t.Fatalf("CheckETag = %#v, want 412 %q", err, tc.wantErr)
			}
		})
	}
}

// TestDecodeJSON checks bad JSON is a 400 with the decoder's text and a
// body over 1 MiB is a 413 once it goes through Fail.
func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	type body struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		name     string
		body     io.Reader
		want     body
		wantCode int // 0: no error
		wantMsg  string
	}{
		{name: "ok/object", body: strings.NewReader(`{"name":"a","other":1}`), want: body{Name: "a"}},
		{name: "ok/exactly the limit", body: io.MultiReader(strings.NewReader(`{"name":"`),
			strings.NewReader(strings.Repeat("x", response.MaxBody-len(`{"name":""}`))), strings.NewReader(`"}`)),
			want: body{Name: strings.Repeat("x", response.MaxBody-len(`{"name":""}`))}},
		{name: "fail/truncated", body: strings.NewReader(`{"name":`), wantCode: 400, wantMsg: "unexpected EOF"},
		{name: "fail/empty", body: strings.NewReader(``), wantCode: 400, wantMsg: "EOF"},
		{name: "fail/wrong type", body: strings.NewReader(`{"name":1}`), wantCode: 400,
			wantMsg: "json: cannot unmarshal number into Go struct field body.name of type string"},
		{name: "fail/too large", body: io.MultiReader(strings.NewReader(`{"name":"`),
			strings.NewReader(strings.Repeat("x", response.MaxBody))), wantCode: 413,
			wantMsg: "request body larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := record(t, func(w http.ResponseWriter, _ *http.Request) {
				r := httptest.NewRequest("POST", "/1.0/certificates", tc.body)
				var b body
				if err := response.DecodeJSON(w, r, &b); err != nil {
					response.Fail(w, r, nil, err)
					return
				}
				if b != tc.want {
					t.Errorf("decoded %+v, want %+v", b, tc.want)
				}
				response.EmptySync(w)
			})
			wantCode := tc.wantCode
			if wantCode == 0 {
				wantCode = 200
			}
			if got.Code != wantCode {
				t.Fatalf("HTTP %d, want %d: %s", got.Code, wantCode, got.Raw)
			}
			if tc.wantCode != 0 && got.Env["error"] != tc.wantMsg {
				t.Errorf("error = %q, want %q", got.Env["error"], tc.wantMsg)
			}
		})
	}
}

// TestErrorHelpers checks the status of each constructor.
func TestErrorHelpers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"ok/bad request", response.BadRequest("b"), 400, "b"},
		{"ok/forbidden", response.Forbidden("f"), 403, "f"},
		{"ok/not found", response.NotFound("n"), 404, "n"},
		{"ok/conflict", response.Conflict("c"), 409, "c"},
		{"ok/default forbidden", response.ErrForbidden, 403, "not authorized"},
		{"ok/default not found", response.ErrNotFound, 404, "not found"},
	} {
		var e *response.Error
		if !errors.As(tc.err, &e) || e.Status != tc.code || e.Message != tc.msg || tc.err.Error() != tc.msg {
			t.Errorf("%s: got %#v, want %d %q", tc.name, tc.err, tc.code, tc.msg)
		}
	}
}
