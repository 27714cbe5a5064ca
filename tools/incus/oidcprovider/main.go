// Command oidcprovider is the OpenID Connect provider Trustlog's tests run:
// the storage of Incus's mini-oidc (github.com/lxc/incus/v6/test/mini-oidc,
// pinned in this module) served by zitadel/oidc, with what the tests need
// on top: it listens on a port the kernel picks and prints its issuer URL,
// and the access-token lifetime, refresh-token lifetime and device-flow
// poll interval are flags.
//
// Every device authorization is approved as the user named in -user-file
// ("unknown" when the file is absent or empty), re-read on each approval,
// so a test switches users by rewriting the file. Visiting the verification
// URL (BROWSER=curl) approves the code. Access tokens are JWTs signed with
// RS256; the only client is "device" (public, device and refresh grants).
//
// Usage:
//
//	oidcprovider [-addr 127.0.0.1:0] [-user-file F] [-access-ttl 5m] [-refresh-ttl 5h] [-poll-interval 1s]
//
// The first line on stdout is "issuer <url>".
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lxc/incus/v6/test/mini-oidc/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	userFile := flag.String("user-file", "", "file holding the user name to approve as")
	accessTTL := flag.Duration("access-ttl", 5*time.Minute, "access token lifetime")
	refreshTTL := flag.Duration("refresh-ttl", 5*time.Hour, "refresh token lifetime")
	poll := flag.Duration("poll-interval", time.Second, "device flow poll interval")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("oidcprovider: %v", err)
	}
	issuer := fmt.Sprintf("http://%s/", ln.Addr())
	users := userStore{file: *userFile}
	storage.RegisterClients(storage.IncusDeviceClient("device"))
	store := storage.NewStorage(users, storage.WithAccessTokenExpiration(*accessTTL), storage.WithRefreshTokenExpiration(*refreshTTL))
	cfg := &op.Config{
		CryptoKey:             sha256.Sum256([]byte("trustlog test provider")),
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     5 * time.Minute,
			PollInterval: *poll,
			UserFormPath: "/device",
			UserCode:     op.UserCodeBase20,
		},
	}
	provider, err := op.NewProvider(cfg, store, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		log.Fatalf("oidcprovider: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		code := r.FormValue("user_code")
		if code == "" {
			http.Error(w, "user_code missing", http.StatusBadRequest)
			return
		}
		name := users.name()
		if err := store.CompleteDeviceAuthorization(r.Context(), code, name); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "approved %s as %s\n", code, name)
	})
	mux.Handle("/", provider)

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("issuer %s\n", issuer)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("oidcprovider: %v", err)
	}
}

// userStore answers every lookup with the user named in file.
type userStore struct{ file string }

func (u userStore) name() string {
	if u.file == "" {
		return "unknown"
	}
	raw, err := os.ReadFile(u.file)
	if name := strings.TrimSpace(string(raw)); err == nil && name != "" {
		return name
	}
	return "unknown"
}

func (u userStore) user() *storage.User {
	n := u.name()
	return &storage.User{ID: n, Username: n}
}

// ExampleClientID is part of storage.UserStore.
func (u userStore) ExampleClientID() string { return "device" }

// GetUserByID is part of storage.UserStore.
func (u userStore) GetUserByID(string) *storage.User { return u.user() }

// GetUserByUsername is part of storage.UserStore.
func (u userStore) GetUserByUsername(string) *storage.User { return u.user() }
