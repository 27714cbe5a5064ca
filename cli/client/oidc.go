package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustlog/trustlog/cli/config"
	"github.com/trustlog/trustlog/cli/filelock"
)

// OIDC configures a client for a remote that authenticates with OpenID
// Connect access tokens (auth_type oidc).
type OIDC struct {
	// TokenFile is where the tokens live (oidctokens/<remote>.json).
	TokenFile string
	// Notify receives the device-flow instructions (URL and code).
	Notify io.Writer
	// Browser, if set, is run with the verification URL (as $BROWSER).
	Browser string
	// Timeout bounds a device flow; 0 means 5 minutes.
	Timeout time.Duration
	// HTTPClient reaches the identity provider; nil means a client with a
	// 30 s timeout and the system roots.
	HTTPClient *http.Client
}

// challenge is what a 401 says about where to log in.
type challenge struct {
	issuer, clientID, audience string
	scopes                     []string
}

// challengeOf reads the Incus OIDC headers of a 401, or reports none.
func challengeOf(h http.Header) (challenge, bool) {
	c := challenge{issuer: h.Get("X-Incus-OIDC-issuer"), clientID: h.Get("X-Incus-OIDC-clientid"), audience: h.Get("X-Incus-OIDC-audience")}
	if c.issuer == "" || c.clientID == "" {
		return c, false
	}
	for _, s := range strings.Split(h.Get("X-Incus-OIDC-scopes"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.scopes = append(c.scopes, s)
		}
	}
	if len(c.scopes) == 0 {
		c.scopes = []string{"openid", "offline_access"}
	}
	return c, true
}

// accessToken returns the stored access token ("" before the first login).
func (o *OIDC) accessToken() (string, error) {
	t, err := config.LoadOIDCTokens(o.TokenFile)
	return t.AccessToken, err
}

func (o *OIDC) httpClient() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// renew gets a new access token after the server refused used: another
// process's fresh token if one appeared meanwhile, else a refresh with the
// stored refresh token, else the device flow. It runs under a lock on the
// token file, so parallel CLI calls refresh once: providers rotate refresh
// tokens, and a second refresh with the old one would fail.
func (o *OIDC) renew(ctx context.Context, ch challenge, used string) (string, error) {
	unlock, err := filelock.Lock(ctx, o.TokenFile+".lock")
	if err != nil {
		return "", fmt.Errorf("OIDC token lock: %w", err)
	}
	defer unlock()
	stored, err := config.LoadOIDCTokens(o.TokenFile)
	if err != nil {
		return "", err
	}
	if stored.AccessToken != "" && stored.AccessToken != used {
		return stored.AccessToken, nil // refreshed by another process
	}
	pctx := gooidc.ClientContext(ctx, o.httpClient())
	provider, err := gooidc.NewProvider(pctx, ch.issuer)
	if err != nil {
		return "", fmt.Errorf("OIDC provider %s: %w", ch.issuer, err)
	}
	cfg := oauth2.Config{ClientID: ch.clientID, Endpoint: provider.Endpoint(), Scopes: ch.scopes}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client: no secret
	if stored.RefreshToken != "" {
		tok, err := cfg.TokenSource(pctx, &oauth2.Token{RefreshToken: stored.RefreshToken}).Token()
		if err == nil {
			return o.save(tok, stored)
		}
		// A refused refresh (expired, rotated elsewhere) falls back to a login.
	}
	tok, err := o.deviceFlow(pctx, cfg, ch)
	if err != nil {
		return "", err
	}
	return o.save(tok, config.OIDCTokens{})
}

// save stores tok (keeping the old refresh and ID tokens when the provider
// sent no new ones) and returns its access token.
func (o *OIDC) save(tok *oauth2.Token, old config.OIDCTokens) (string, error) {
	t := config.OIDCTokens{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, IDToken: old.IDToken}
	if t.RefreshToken == "" {
		t.RefreshToken = old.RefreshToken
	}
	if id, ok := tok.Extra("id_token").(string); ok && id != "" {
		t.IDToken = id
	}
	if err := config.SaveOIDCTokens(o.TokenFile, t); err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// deviceFlow runs the OAuth 2.0 Device Authorization Grant: it prints the
// URL and the code, opens the browser if one is configured, and polls the
// provider until the user approves, refuses, or the time is up.
func (o *OIDC) deviceFlow(ctx context.Context, cfg oauth2.Config, ch challenge) (*oauth2.Token, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var opts []oauth2.AuthCodeOption
	if ch.audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", ch.audience))
	}
	da, err := cfg.DeviceAuth(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OIDC device authorization: %w", err)
	}
	url := da.VerificationURIComplete
	if url == "" {
		url = da.VerificationURI
	}
	if o.Notify != nil {
		fmt.Fprintf(o.Notify, "URL: %s\nCode: %s\n", url, da.UserCode)
	}
	if o.Browser != "" {
		openBrowser(ctx, o.Browser, url)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da, opts...)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("OIDC login not completed within %v", timeout)
		}
		return nil, fmt.Errorf("OIDC login: %w", err)
	}
	return tok, nil
}

// openBrowser runs browser with url in the background; it is given at
// most the flow's time and its failure only means the user opens the URL.
func openBrowser(ctx context.Context, browser, url string) {
	fields := strings.Fields(browser)
	if len(fields) == 0 {
		return
	}
	cmd := exec.CommandContext(ctx, fields[0], append(fields[1:], url)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return
	}
	go func() { _ = cmd.Wait() }()
}
