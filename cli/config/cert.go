package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"time"
)

// ClientCertPaths returns the paths of client.crt and client.key.
func (c *Config) ClientCertPaths() (crt, key string) {
	return filepath.Join(c.dir, "client.crt"), filepath.Join(c.dir, "client.key")
}

// ClientCertificate loads the client key pair, generating it on first need
// (ECDSA P-384, self-signed, EKU clientAuth, ten years) and saying so on
// notice.
func (c *Config) ClientCertificate(notice io.Writer) (tls.Certificate, error) {
	crtPath, keyPath := c.ClientCertPaths()
	pair, err := tls.LoadX509KeyPair(crtPath, keyPath)
	if err == nil {
		return pair, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("load client certificate: %w", err)
	}
	fmt.Fprintln(notice, "Generating a client certificate. This may take a minute...")
	certPEM, keyPEM, err := generateClientCert(time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(c.dir, 0o750); err != nil {
		return tls.Certificate{}, err
	}
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("write client key: %w", err)
	}
	if err := WriteFileAtomic(crtPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("write client certificate: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func generateClientCert(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate client key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	name := "trustlog"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Trustlog"}, CommonName: name + "@" + host},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// ServerCert returns the pinned certificate of remote name, or nil if none.
func (c *Config) ServerCert(name string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(c.ServerCertPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM certificate", c.ServerCertPath(name))
	}
	return x509.ParseCertificate(b.Bytes)
}

// SaveServerCert pins cert for remote name.
func (c *Config) SaveServerCert(name string, cert *x509.Certificate) error {
	if err := os.MkdirAll(filepath.Join(c.dir, "servercerts"), 0o750); err != nil {
		return err
	}
	return WriteFileAtomic(c.ServerCertPath(name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

// ClientCA returns the pool of client.ca, or nil when there is none.
func (c *Config) ClientCA() (*x509.CertPool, error) {
	raw, err := os.ReadFile(c.ClientCAPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s: no PEM certificate", c.ClientCAPath())
	}
	return pool, nil
}
