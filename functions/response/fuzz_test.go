package response_test

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/response"
)

// FuzzDecodeJSON: request bodies of every shape the API takes either
// decode or give an error the envelope can carry, never a panic.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"name":"a","type":"client","token":true}`))
	f.Add([]byte(`{"config":{"user.a":"b"}}`))
	f.Add([]byte(`{"trust_token":"x","certificate":"y"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":1}{"b":2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&api.CertificatesPost{}, &api.ServerPut{}, &api.CertificatePut{}, &api.IdentityPut{}, &api.IdentitiesTLSPost{}} {
			r := httptest.NewRequest("POST", "/1.0/x", bytes.NewReader(body))
			w := httptest.NewRecorder()
			if err := response.DecodeJSON(w, r, v); err != nil {
				response.Fail(httptest.NewRecorder(), r, nil, err)
			}
		}
	})
}
