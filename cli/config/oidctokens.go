package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// OIDCTokens are the tokens of an OIDC remote, kept in
// oidctokens/<remote>.json (0600) as the incus client keeps them.
type OIDCTokens struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// OIDCTokensPath returns the token file of remote name.
func (c *Config) OIDCTokensPath(name string) string {
	return filepath.Join(c.dir, "oidctokens", name+".json")
}

// LoadOIDCTokens reads a token file; a missing file is empty tokens.
func LoadOIDCTokens(path string) (OIDCTokens, error) {
	var t OIDCTokens
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("read OIDC tokens: %w", err)
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return OIDCTokens{}, fmt.Errorf("OIDC token file %s is damaged (remove it to log in again): %w", path, err)
	}
	return t, nil
}

// SaveOIDCTokens writes a token file atomically, readable by its owner
// only, in a directory only the owner can list.
func SaveOIDCTokens(path string, t OIDCTokens) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save OIDC tokens: %w", err)
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(path, raw, 0o600); err != nil {
		return fmt.Errorf("save OIDC tokens: %w", err)
	}
	return nil
}
