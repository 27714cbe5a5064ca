package command_test

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/cli/config"
	"github.com/trustlog/trustlog/functions/api"
)

// recorded is one request the test server saw.
type recorded struct {
	Method, Path, IfMatch, Body string
}

// TestEditsSendETag: read-modify-write commands send back, in If-Match,
// the ETag of the object they read, and only the fields the API takes.
func TestEditsSendETag(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []recorded
	cert := api.Certificate{Name: "old", Type: "client", Projects: []string{}, Certificate: "PEM", Fingerprint: "abcdef0123456789"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, recorded{r.Method, r.URL.RequestURI(), r.Header.Get("If-Match"), string(body)})
		mu.Unlock()
		var meta any = map[string]any{}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/1.0":
			w.Header().Set("ETag", `"server-etag"`)
			meta = api.Server{Config: map[string]string{"user.keep": "1", "user.drop": "2"}, Auth: "trusted"}
		case r.Method == http.MethodGet && r.URL.Path == "/1.0/certificates/abcdef":
			w.Header().Set("ETag", `"cert-etag"`)
			meta = cert
		case r.URL.Path == "/1.0/certificates":
			meta = []api.Certificate{}
		}
		raw, _ := json.Marshal(meta)
		json.NewEncoder(w).Encode(api.Response{Type: api.TypeSync, Status: "Success", StatusCode: 200, Metadata: raw})
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)

	c := cliEnv{conf: filepath.Join(t.TempDir(), "conf"), data: t.TempDir()}
	conf, err := config.Load(c.conf, "")
	if err != nil {
		t.Fatal(err)
	}
	conf.Remotes["h"] = config.Remote{Addr: srv.URL, Protocol: "incus", AuthType: "tls"}
	if err := conf.Save(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(c.conf, "servercerts"), 0o750); err != nil {
		t.Fatal(err)
	}
	pin := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(conf.ServerCertPath("h"), pin, 0o644); err != nil {
		t.Fatal(err)
	}

	c.mustRun(t, "", "config", "set", "h:", "user.new", "3")
	c.mustRun(t, "", "config", "unset", "h:", "user.drop")
	c.mustRun(t, "name: new\ntype: client\nrestricted: true\nprojects: [web]\ncertificate: PEM\ndescription: edited\n",
		"config", "trust", "edit", "h:", "abcdef")
	c.mustRun(t, "", "config", "trust", "list", "h:")

	want := []recorded{
		{Method: "GET", Path: "/1.0"},
		{Method: "PUT", Path: "/1.0", IfMatch: `"server-etag"`, Body: `{"config":{"user.drop":"2","user.keep":"1","user.new":"3"}}`},
		{Method: "GET", Path: "/1.0"},
		{Method: "PUT", Path: "/1.0", IfMatch: `"server-etag"`, Body: `{"config":{"user.drop":"","user.keep":"1"}}`},
		{Method: "GET", Path: "/1.0/certificates/abcdef"},
		{Method: "PUT", Path: "/1.0/certificates/abcdef0123456789", IfMatch: `"cert-etag"`,
			Body: `{"name":"new","type":"client","restricted":true,"projects":["web"],"certificate":"PEM","description":"edited"}`},
		{Method: "GET", Path: "/1.0/certificates?recursion=1&filter="},
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
