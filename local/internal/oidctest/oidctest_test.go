package oidctest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/trustlog/trustlog/local/internal/oidctest"
)

func TestStartServesDiscovery(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{})
	resp, err := http.Get(p.Issuer + ".well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
		Device string `json:"device_authorization_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != p.Issuer || doc.Device == "" {
		t.Fatalf("discovery = %+v, want issuer %s and a device endpoint", doc, p.Issuer)
	}
}
