package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sync/atomic"
	"time"
)

// servedCert is the certificate the HTTPS listener presents. It can be
// swapped while serving.
type servedCert struct {
	cur atomic.Pointer[certInfo]
}

type certInfo struct {
	pair        tls.Certificate
	pem         string
	fingerprint string
}

func (s *servedCert) set(pair tls.Certificate) {
	s.cur.Store(&certInfo{
		pair:        pair,
		pem:         string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]})),
		fingerprint: fingerprint(pair.Certificate[0]),
	})
}

func (s *servedCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &s.cur.Load().pair, nil
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// loadOrCreateServerCert reads <dir>/server.crt and server.key, generating
// them on first start: ECDSA P-384, self-signed, ten years, EKU serverAuth,
// SANs for the host name and the loopback addresses (as LXD and Incus do).
func loadOrCreateServerCert(dir string, now time.Time) (tls.Certificate, bool, error) {
	crtPath, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	pair, err := tls.LoadX509KeyPair(crtPath, keyPath)
	if err == nil {
		return pair, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("load server certificate: %w", err)
	}
	certPEM, keyPEM, err := generateServerCert(now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	// The key first: a crash before the certificate is written leaves no
	// pair, and the next start makes a new one.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("write server key: %w", err)
	}
	if err := writeFileAtomic(crtPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("write server certificate: %w", err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	return pair, true, err
}

func generateServerCert(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate server key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	username := "root"
	if u, err := user.Current(); err == nil {
		username = u.Username
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Trustlog"}, CommonName: username + "@" + host},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
