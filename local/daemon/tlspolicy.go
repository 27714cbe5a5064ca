package daemon

import "crypto/tls"

// TLS12CipherSuites returns the only TLS 1.2 cipher suites Trustlog's
// servers accept: ECDHE key exchange (forward secrecy) with an AEAD cipher,
// AES-GCM or ChaCha20-Poly1305. CBC suites (with SHA-1 or SHA-256 MACs) and
// static-RSA key exchange are refused. TLS 1.3 suites are not listed: Go
// does not let them be configured, and all of them are AEAD.
func TLS12CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// ServerTLSConfig returns the protocol rule every Trustlog TLS server
// applies: TLS 1.3 only, or, with insecureTLS (TRUSTLOG_INSECURE_TLS),
// TLS 1.2 too but only with TLS12CipherSuites. Callers add certificates,
// client authentication and protocols to the returned (fresh) config.
func ServerTLSConfig(insecureTLS bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if insecureTLS {
		cfg.MinVersion = tls.VersionTLS12
		cfg.CipherSuites = TLS12CipherSuites()
	}
	return cfg
}
