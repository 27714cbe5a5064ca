package response_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/response"
)

// TestDecodeJSONStrict: a strict body refuses fields the target does not
// have and data after the JSON value, with a 400; everything else is as
// DecodeJSON.
func TestDecodeJSONStrict(t *testing.T) {
	t.Parallel()
	type body struct {
		Name string `json:"name"`
		On   bool   `json:"on"`
	}
	for _, tc := range []struct {
		name     string
		body     io.Reader
		want     body
		wantCode int // 0: no error
		wantMsg  string
	}{
		{name: "ok/object", body: strings.NewReader(`{"name":"a","on":true}`), want: body{Name: "a", On: true}},
		{name: "ok/trailing white space", body: strings.NewReader("{\"name\":\"a\"}\n \t\r\n"), want: body{Name: "a"}},
		{name: "fail/unknown field", body: strings.NewReader(`{"name":"a","unknown_field":1}`), wantCode: 400,
			wantMsg: `json: unknown field "unknown_field"`},
		{name: "fail/unknown field only", body: strings.NewReader(`{"unknown_field":1}`), wantCode: 400,
			wantMsg: `json: unknown field "unknown_field"`},
		{name: "fail/second value", body: strings.NewReader(`{"name":"a"} {"on":true}`), wantCode: 400,
			wantMsg: "unexpected data after the JSON body"},
		{name: "fail/trailing garbage", body: strings.NewReader(`{"name":"a"}x`), wantCode: 400,
			wantMsg: "unexpected data after the JSON body"},
		{name: "fail/wrong type", body: strings.NewReader(`{"on":"yes"}`), wantCode: 400,
			wantMsg: "json: cannot unmarshal string into Go struct field body.on of type bool"},
		{name: "fail/too large after the value", body: io.MultiReader(strings.NewReader(`{"name":"a"}`),
			strings.NewReader(strings.Repeat(" ", response.MaxBody))), wantCode: 413,
			wantMsg: "request body larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := record(t, func(w http.ResponseWriter, _ *http.Request) {
				r := httptest.NewRequest("PUT", "/1.0/certificates/ab", tc.body)
				var b body
				if err := response.DecodeJSONStrict(w, r, &b); err != nil {
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
