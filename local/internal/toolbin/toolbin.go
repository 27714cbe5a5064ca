// Package toolbin builds the external programs that tests drive, such as
// the stock incus client, from the pinned modules under tools/, and caches
// the binaries outside the repository.
//
// The first call for a program compiles it (the incus client takes about a
// minute on two cores); later calls, in this or any other test process,
// find it in the cache. Test packages that run at the same time share the
// work: one builds while the others wait on a file lock in the cache
// directory. A binary is rebuilt when its module's go.mod or go.sum, the
// package or the Go toolchain changes.
//
// The cache root is $TRUSTLOG_TOOLS_CACHE, or trustlog-tools under
// os.UserCacheDir(). Call the functions here before a test changes HOME,
// since both the cache and the go command's own caches are found through it.
//
// Running incus in a test: give the command its own HOME and INCUS_CONF,
// both fresh temporary directories (IncusEnv does this), so that it neither
// reads nor writes the developer's client configuration and certificates.
// Set them on the exec.Cmd, not with t.Setenv, so that tests stay parallel.
package toolbin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustlog/trustlog/cli/filelock"
)

// Module is the module path of the repository's main module; RepoRoot looks
// for the go.mod that declares it.
const Module = "github.com/trustlog/trustlog"

// IncusVersion is the version of github.com/lxc/incus/v6 pinned in
// tools/incus/go.mod. It names the cache directory of the incus client.
const IncusVersion = "v6.22.0"

// CacheEnv names the environment variable that overrides the cache root.
const CacheEnv = "TRUSTLOG_TOOLS_CACHE"

// buildTimeout bounds one call that builds: the wait for another process's
// build (the file lock) and the build itself.
const buildTimeout = 8 * time.Minute

// built remembers, per binary path, the binaries this process has already
// checked or built, so that repeated calls cost a map lookup.
var built sync.Map

// Incus returns the path of the stock incus command-line client at
// IncusVersion, building it from tools/incus on first use. It fails the
// test if the repository root cannot be found or the build fails.
func Incus(t testing.TB) string {
	t.Helper()
	return Build(t, "tools/incus", "github.com/lxc/incus/v6/cmd/incus", "incus-"+IncusVersion)
}

// IncusEnv returns the current environment with HOME and INCUS_CONF set to
// fresh temporary directories of the test, for the Env of an exec.Cmd that
// runs the incus client.
func IncusEnv(t testing.TB) []string {
	t.Helper()
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "INCUS_CONF=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+t.TempDir(), "INCUS_CONF="+t.TempDir())
}

// Build returns the path of the binary of package pkg, built with the go
// command inside moduleDir (a directory relative to the repository root
// that holds the go.mod pinning pkg). The binary is kept as
// <cache root>/<name>/<last element of pkg>; name should carry the pinned
// version, such as "incus-v6.22.0". The build runs with CGO_ENABLED=0 and
// -trimpath, is bounded in time, and its output is reported if it fails.
// Another tool is added the same way: pin it with `go get -tool` in a module
// under tools/ and call Build, as in
//
//	Build(t, "tools/incus", "github.com/lxc/incus/v6/test/mini-oidc", "mini-oidc-"+IncusVersion)
func Build(t testing.TB, moduleDir, pkg, name string) string {
	t.Helper()
	root := RepoRoot(t)
	cache, err := cacheRoot()
	if err != nil {
		t.Fatalf("toolbin: %v", err)
	}
	b := builder{
		modDir: filepath.Join(root, filepath.FromSlash(moduleDir)),
		pkg:    pkg,
		dir:    filepath.Join(cache, name),
		bin:    path.Base(pkg),
	}
	out := filepath.Join(b.dir, b.bin)
	if _, ok := built.Load(out); ok {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout(t))
	defer cancel()
	if err := b.ensure(ctx); err != nil {
		t.Fatalf("toolbin: %s: %v", pkg, err)
	}
	built.Store(out, true)
	return out
}

// timeout is buildTimeout, shortened to end a few seconds before the test
// binary's own deadline when that comes first.
func timeout(t testing.TB) time.Duration {
	d := buildTimeout
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := dt.Deadline(); ok {
			if left := time.Until(deadline) - 5*time.Second; left < d {
				d = max(left, time.Second)
			}
		}
	}
	return d
}

// cacheRoot returns the directory that holds every cached tool.
func cacheRoot() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(dir, "trustlog-tools"), nil
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory whose go.mod declares Module. Tests run in their
// package's directory, so this works from any package of the module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("toolbin: working directory: %v", err)
	}
	for dir := wd; ; {
		if modulePath(filepath.Join(dir, "go.mod")) == Module {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("toolbin: no go.mod of module %s at or above %s", Module, wd)
		}
		dir = parent
	}
}

// modulePath returns the module path declared in the go.mod file at name,
// or "" if there is none.
func modulePath(name string) string {
	data, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "module")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		rest = strings.TrimSpace(rest)
		if i := strings.Index(rest, "//"); i >= 0 {
			rest = strings.TrimSpace(rest[:i])
		}
		if unq, err := strconv.Unquote(rest); err == nil {
			return unq
		}
		return rest
	}
	return ""
}

// lockDir serialises the builds of one tool, across test processes too.
func lockDir(ctx context.Context, name string) (unlock func(), err error) {
	return filelock.Lock(ctx, name)
}

// builder builds one binary into the cache.
type builder struct {
	modDir string // module directory holding go.mod and go.sum
	pkg    string // package to build
	dir    string // cache directory of this tool
	bin    string // file name of the binary in dir

	builds *atomic.Int64 // if set, counts the builds run (for tests)
}

// ensure makes sure that dir holds an up-to-date binary, building it under
// the directory's file lock if needed.
func (b builder) ensure(ctx context.Context) error {
	stamp, err := b.stamp()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(ctx, filepath.Join(b.dir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()

	out := filepath.Join(b.dir, b.bin)
	stampFile := out + ".stamp"
	if have, err := os.ReadFile(stampFile); err == nil && string(have) == stamp {
		if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
			return nil
		}
	}
	// Remove the stamp first: a crash between the two renames below then
	// leaves a binary without a stamp, which is rebuilt, never the reverse.
	if err := os.Remove(stampFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tmp, err := os.MkdirTemp(b.dir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := b.build(ctx, filepath.Join(tmp, b.bin)); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tmp, b.bin), out); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "stamp"), []byte(stamp), 0o644); err != nil {
		return err
	}
	return os.Rename(filepath.Join(tmp, "stamp"), stampFile)
}

// stamp identifies what the binary is built from: the package, the
// module's go.mod and go.sum, and the Go toolchain.
func (b builder) stamp() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "pkg %s\ngo %s %s/%s\n", b.pkg, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(b.modDir, name))
		if err != nil && !(name == "go.sum" && errors.Is(err, os.ErrNotExist)) {
			// A module without dependencies has no go.sum.
			return "", fmt.Errorf("tool module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	// The module's own packages (a tool written here) are part of the build.
	err := filepath.WalkDir(b.modDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.modDir, path)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("tool module: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)) + "\n", nil
}

// build compiles the package into out.
func (b builder) build(ctx context.Context, out string) error {
	if b.builds != nil {
		b.builds.Add(1)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go command: %w", err)
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-mod=readonly", "-trimpath", "-o", out, b.pkg)
	cmd.Dir = b.modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	killGroup(cmd)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	output, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return fmt.Errorf("go build in %s after %v: %w\n%s", b.modDir, time.Since(start).Round(time.Millisecond), err, output)
	}
	return nil
}
