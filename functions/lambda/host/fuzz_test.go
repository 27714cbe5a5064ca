package host

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/trustlog/trustlog/functions/authn"
)

// FuzzALBClientCert: whatever an ALB (or anyone) puts in
// X-Amzn-Mtls-Clientcert, the request is refused with 400 or passed on
// with a certificate chain that parsed; it never panics.
func FuzzALBClientCert(f *testing.F) {
	f.Add("")
	f.Add("%zz")
	f.Add("-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A")
	f.Add("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, header string) {
		var saw []int
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			saw = append(saw, len(authn.PeerCertificates(r)))
			if r.Header.Get(HeaderALBClientCert) != "" {
				t.Fatal("the certificate header reached the handler")
			}
		})
		r := httptest.NewRequest("GET", "/1.0", nil)
		r.Header.Set(HeaderALBClientCert, header)
		w := httptest.NewRecorder()
		FromGateway(GatewayALB, next, log).ServeHTTP(w, r)
		if len(saw) == 0 && w.Code != http.StatusBadRequest {
			t.Fatalf("refused with %d, want 400", w.Code)
		}
	})
}
