package sealing_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/sealing"
)

// newKey returns a fresh random service key.
func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, sealing.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func newBox(t *testing.T, key []byte) *sealing.Box {
	t.Helper()
	b, err := sealing.New(key, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNewKeySize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{"ok/32", 32, true},
		{"fail/empty", 0, false},
		{"fail/16", 16, false},
		{"fail/24", 24, false},
		{"fail/33", 33, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sealing.New(make([]byte, tc.size), nil)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%d-byte key) error = %v, want ok=%v", tc.size, err, tc.ok)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := newBox(t, newKey(t))
	for _, tc := range []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"ok/secret", []byte(strings.Repeat("ab", 32)), []byte("6f1c5ad2-3d1e-4a8f-9d0e-0d5d7d1c2b3a")},
		{"ok/no-additional-data", []byte("secret"), nil},
		{"ok/empty-plaintext", []byte{}, []byte("id")},
		{"ok/binary", []byte{0, 1, 2, 0xff}, []byte{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := b.Seal(tc.plaintext, tc.ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(tc.plaintext) > 0 && strings.Contains(sealed, string(tc.plaintext)) {
				t.Fatalf("sealed text %q contains the plaintext", sealed)
			}
			if _, err := base64.StdEncoding.DecodeString(sealed); err != nil {
				t.Fatalf("sealed text is not standard base64: %v", err)
			}
			got, err := b.Open(sealed, tc.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

// TestOpenFails checks that every way sealed data can be wrong is ErrOpen
// and nothing else.
func TestOpenFails(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	b := newBox(t, key)
	ad := []byte("token-id")
	sealed, err := b.Seal([]byte("the secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed)
	flip := func(i int) string {
		c := bytes.Clone(raw)
		c[i] ^= 0x01
		return base64.StdEncoding.EncodeToString(c)
	}
	other := newBox(t, newKey(t))
	for _, tc := range []struct {
		name   string
		box    *sealing.Box
		sealed string
		ad     []byte
	}{
		{"fail/wrong-additional-data", b, sealed, []byte("other-id")},
		{"fail/missing-additional-data", b, sealed, nil},
		{"fail/wrong-key", other, sealed, ad},
		{"fail/tampered-nonce", b, flip(0), ad},
		{"fail/tampered-ciphertext", b, flip(12), ad},
		{"fail/tampered-tag", b, flip(len(raw) - 1), ad},
		{"fail/truncated", b, base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), ad},
		{"fail/too-short", b, base64.StdEncoding.EncodeToString(raw[:27]), ad},
		{"fail/empty", b, "", ad},
		{"fail/garbage", b, "not base64 at all!", ad},
		{"fail/url-base64", b, base64.RawURLEncoding.EncodeToString(raw) + "-_", ad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.box.Open(tc.sealed, tc.ad)
			if !errors.Is(err, sealing.ErrOpen) {
				t.Fatalf("Open error = %v, want ErrOpen", err)
			}
			if got != nil {
				t.Fatalf("Open returned %q with an error", got)
			}
		})
	}
}

// TestSealRandomises checks that sealing the same plaintext twice gives
// different outputs (fresh nonces), both of which open.
func TestSealRandomises(t *testing.T) {
	t.Parallel()
	b := newBox(t, newKey(t))
	seen := map[string]bool{}
	for range 16 {
		s, err := b.Seal([]byte("same"), []byte("id"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatalf("two seals of the same plaintext are equal: %s", s)
		}
		seen[s] = true
		if got, err := b.Open(s, []byte("id")); err != nil || string(got) != "same" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
}

// TestSealUsesRandom checks that the nonce comes from the injected source,
// and that a failing source fails Seal instead of reusing a nonce.
func TestSealUsesRandom(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	fixed, err := sealing.New(key, bytes.NewReader(bytes.Repeat([]byte{7}, 24)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := fixed.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fixed.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("with the same nonce bytes the seals differ: %s %s", a, b)
	}
	if raw, _ := base64.StdEncoding.DecodeString(a); !bytes.Equal(raw[:12], bytes.Repeat([]byte{7}, 12)) {
		t.Fatalf("nonce %x does not come from the injected reader", raw[:12])
	}
	if _, err := fixed.Seal([]byte("x"), nil); err == nil {
		t.Fatal("Seal succeeded with an exhausted random source")
	}
}

// TestConcurrentUse seals and opens from many goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := newBox(t, newKey(t))
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			ad := []byte{byte(i)}
			for range 100 {
				s, err := b.Seal([]byte("p"), ad)
				if err == nil {
					_, err = b.Open(s, ad)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
