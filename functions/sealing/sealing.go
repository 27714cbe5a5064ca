// Package sealing encrypts the few secrets Trustlog must be able to show
// again (trust-token secrets) with AES-256-GCM under a service key that
// lives outside the event log.
package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// KeySize is the length of a service key: 32 bytes, for AES-256.
const KeySize = 32

// ErrOpen reports sealed data that does not open under the key: wrong key,
// wrong additional data, or tampered bytes. It never says which.
var ErrOpen = errors.New("sealing: cannot open sealed data")

// Box seals and opens with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
	rand io.Reader
}

// New returns a Box for a 32-byte key. random is the nonce source;
// nil means crypto/rand.
func New(key []byte, random io.Reader) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealing: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	if random == nil {
		random = rand.Reader
	}
	return &Box{aead: aead, rand: random}, nil
}

// Seal encrypts plaintext bound to additional data ad (such as a token id)
// and returns base64 of nonce‖ciphertext‖tag.
func (b *Box) Seal(plaintext, ad []byte) (string, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := io.ReadFull(b.rand, nonce); err != nil {
		return "", fmt.Errorf("sealing: nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b.aead.Seal(nonce, nonce, plaintext, ad)), nil
}

// Open reverses Seal. Any failure is ErrOpen.
func (b *Box) Open(sealed string, ad []byte) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return nil, ErrOpen
	}
	n := b.aead.NonceSize()
	out, err := b.aead.Open(nil, raw[:n], raw[n:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
