package toolbin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runTimeout bounds each program a test runs.
const runTimeout = time.Minute

func TestIncus(t *testing.T) {
	t.Parallel()
	incus := Incus(t)
	if again := Incus(t); again != incus {
		t.Fatalf("second Incus() = %q, first %q", again, incus)
	}
	if want := filepath.Join("incus-"+IncusVersion, "incus"); !strings.HasSuffix(incus, want) {
		t.Errorf("Incus() = %q, want a path ending in %q", incus, want)
	}

	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, incus, "version")
	cmd.Env = IncusEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("incus version: %v\n%s", err, out)
	}
	// Without a server the second line says "Server version: unreachable".
	m := regexp.MustCompile(`(?m)^Client version: (\S+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("incus version printed no client version:\n%s", out)
	}
	if got, want := "v"+string(m[1]), strings.TrimSuffix(IncusVersion, ".0"); got != want {
		t.Errorf("client version = %s, want %s", got, want)
	}
}

func TestIncusEnv(t *testing.T) {
	t.Parallel()
	env := IncusEnv(t)
	vars := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = append(vars[k], v)
	}
	for _, k := range []string{"HOME", "INCUS_CONF"} {
		vs := vars[k]
		if len(vs) != 1 {
			t.Fatalf("%s set %d times in %q", k, len(vs), env)
		}
		if fi, err := os.Stat(vs[0]); err != nil || !fi.IsDir() {
			t.Errorf("%s=%q is not a directory (%v)", k, vs[0], err)
		}
		if home, _ := os.UserHomeDir(); vs[0] == home {
			t.Errorf("%s is the real home directory %q", k, home)
		}
	}
	if vars["HOME"][0] == vars["INCUS_CONF"][0] {
		t.Errorf("HOME and INCUS_CONF share %q", vars["HOME"][0])
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root := RepoRoot(t)
	if got := modulePath(filepath.Join(root, "go.mod")); got != Module {
		t.Errorf("module of %s = %q, want %q", root, got, Module)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "incus", "go.mod")); err != nil {
		t.Errorf("repository root %s has no tools/incus module: %v", root, err)
	}
}

func TestModulePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		gomod string
		want  string
	}{
		{"ok/plain", "module github.com/trustlog/trustlog\n\ngo 1.26.0\n", Module},
		{"ok/after-comment", "// the service\nmodule github.com/trustlog/trustlog\n", Module},
		{"ok/quoted", "module \"github.com/trustlog/trustlog\"\n", Module},
		{"ok/trailing-comment", "module github.com/trustlog/trustlog // main\n", Module},
		{"ok/tab", "module\tgithub.com/trustlog/trustlog\n", Module},
		{"ok/other-module", "module github.com/trustlog/trustlog/tools\n", Module + "/tools"},
		{"fail/no-module-line", "go 1.26.0\n", ""},
		{"fail/modulex", "modulex github.com/trustlog/trustlog\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := filepath.Join(t.TempDir(), "go.mod")
			if err := os.WriteFile(name, []byte(tc.gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := modulePath(name); got != tc.want {
				t.Errorf("modulePath(%q) = %q, want %q", tc.gomod, got, tc.want)
			}
		})
	}
	t.Run("fail/missing-file", func(t *testing.T) {
		t.Parallel()
		if got := modulePath(filepath.Join(t.TempDir(), "go.mod")); got != "" {
			t.Errorf("modulePath(missing) = %q, want \"\"", got)
		}
	})
}

// helloModule writes a module without dependencies whose main package
// prints msg, and returns its directory.
func helloModule(t *testing.T, msg string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.26.0\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(" + `"` + msg + `"` + ") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run runs the program at path and returns what it printed.
func run(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, out)
	}
	return string(out)
}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestEnsureBuildsOnceAcrossConcurrentCallers(t *testing.T) {
	t.Parallel()
	var builds atomic.Int64
	b := builder{
		modDir: helloModule(t, "hello"),
		pkg:    "example.com/hello",
		dir:    filepath.Join(t.TempDir(), "hello-v1"),
		bin:    "hello",
		builds: &builds,
	}
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()

	const callers = 4
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { errs[i] = b.ensure(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d concurrent callers ran %d builds, want 1", callers, n)
	}
	bin := filepath.Join(b.dir, b.bin)
	if got := run(t, bin); got != "hello" {
		t.Errorf("built program printed %q, want %q", got, "hello")
	}
	before := stat(t, bin)

	if err := b.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if n := builds.Load(); n != 1 || !os.SameFile(stat(t, bin), before) {
		t.Errorf("an up-to-date binary was rebuilt (%d builds)", n)
	}

	// A changed go.mod (a new pin) makes it stale.
	gomod := filepath.Join(b.modDir, "go.mod")
	if err := os.WriteFile(gomod, []byte("module example.com/hello\n\ngo 1.25.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if n := builds.Load(); n != 2 {
		t.Errorf("after a go.mod change: %d builds, want 2", n)
	}
	if got := run(t, bin); got != "hello" {
		t.Errorf("rebuilt program printed %q, want %q", got, "hello")
	}
	leftovers, err := filepath.Glob(filepath.Join(b.dir, ".build-*"))
	if err != nil || len(leftovers) != 0 {
		t.Errorf("temporary build directories left behind: %q (%v)", leftovers, err)
	}
}

func TestEnsureFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, modDir string) context.Context
		want    string // in the error
	}{
		{
			name: "fail/compile-error",
			prepare: func(t *testing.T, modDir string) context.Context {
				main := filepath.Join(modDir, "main.go")
				if err := os.WriteFile(main, []byte("package main\n\nfunc main() { undefinedName() }\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return t.Context()
			},
			want: "undefined: undefinedName",
		},
		{
			name: "fail/context-ended",
			prepare: func(t *testing.T, _ string) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			want: "context canceled",
		},
		{
			name: "fail/no-module",
			prepare: func(t *testing.T, modDir string) context.Context {
				if err := os.Remove(filepath.Join(modDir, "go.mod")); err != nil {
					t.Fatal(err)
				}
				return t.Context()
			},
			want: "tool module",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := builder{
				modDir: helloModule(t, "hello"),
				pkg:    "example.com/hello",
				dir:    filepath.Join(t.TempDir(), "hello-v1"),
				bin:    "hello",
			}
			ctx, cancel := context.WithTimeout(tc.prepare(t, b.modDir), buildTimeout)
			defer cancel()
			err := b.ensure(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ensure() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(b.dir, b.bin)); err == nil {
				t.Errorf("a failed build left a binary in the cache")
			}
		})
	}
}

func TestLockDirWaitIsBounded(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), ".lock")
	unlock, err := lockDir(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}

	// A second holder waits until its context ends, then gives up.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := lockDir(ctx, name); err == nil {
		t.Fatal("lockDir() on a held lock succeeded")
	}

	// Once released, the lock can be taken again, even though the waiter
	// that gave up is granted it first and must let it go.
	unlock()
	ctx2, cancel2 := context.WithTimeout(t.Context(), runTimeout)
	defer cancel2()
	unlock2, err := lockDir(ctx2, name)
	if err != nil {
		t.Fatalf("lockDir() after release: %v", err)
	}
	unlock2()
}
