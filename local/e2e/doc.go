// Package e2e holds end-to-end tests of trustlogd driven by real clients:
// the stock incus client (built from the pinned module by toolbin), curl
// and openssl. It has no code of its own.
package e2e
