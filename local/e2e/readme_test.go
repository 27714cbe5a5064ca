package e2e_test

// The documentation's shell blocks, run as written. A block marked with
// <!-- doc-test: NAME --> on the line before its ```sh fence is extracted,
// its commands run one by one in a single bash session against a trustlogd
// the test starts, in a fresh HOME whose default data directory is the
// daemon's (so `bin/trustlog`'s local remote reaches it, as in the README),
// and each command's exit status and key output are checked. Only what
// names this machine changes: the HTTPS port, and paths into the repository.
//
// A comment line "# on <name>'s machine" switches the commands after it to
// another HOME (another CLI configuration, no local remote) until "# back
// on the server".

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// TestReadme runs the README's first steps (trustlog and the stock incus
// client) and its trust-token walk-through.
func TestReadme(t *testing.T) {
	t.Parallel()
	root := toolbin.RepoRoot(t)
	trustlog := toolbin.Build(t, ".", toolbin.Module+"/cli", "trustlog-e2e")
	incus := toolbin.Incus(t)
	h := newDocHost(t)
	s := h.start(t)
	addr := s.d.HTTPSAddr()

	cmds := docCommands(t, filepath.Join(root, "README.md"), "first-steps", "incus", "trust-tokens")
	h.substitute(t, cmds, []docSubst{
		{old: "127.0.0.1:8443", new: addr},
		{old: "go build -o bin/trustlog ./cli", new: "mkdir -p bin && ln -s " + trustlog + " bin/trustlog", whole: true},
	})
	results := h.run(t, cmds, trustlog, incus)

	checkDoc(t, cmds, results, []docExpect{
		{block: "first-steps", cmd: "bin/trustlog info local:", out: []string{"auth: trusted", "auth_user_method: unix"}},
		{block: "first-steps", cmd: "bin/trustlog info local: | grep certificate_fingerprint", out: []string{"certificate_fingerprint: " + s.d.Fingerprint()}},
		{block: "first-steps", cmd: "openssl req -x509"},
		{block: "first-steps", cmd: "bin/trustlog config trust add alice.crt --name alice"},
		{block: "first-steps", cmd: "bin/trustlog config trust list", out: []string{"alice"}},
		{block: "first-steps", cmd: "openssl x509 -in alice.crt -noout -fingerprint -sha256", out: []string{"Fingerprint="}},
		{block: "first-steps", cmd: "curl -sk --cert alice.crt", out: []string{`"auth":"trusted"`}},
		{block: "first-steps", cmd: "token=$(bin/trustlog config trust add --name me -q)"},
		{block: "first-steps", cmd: `bin/trustlog remote add mysrv "$token"`, out: []string{"Client certificate now trusted by server: mysrv"}},
		{block: "first-steps", cmd: "bin/trustlog remote list", out: []string{"mysrv", "https://" + addr}},
		{block: "first-steps", cmd: "bin/trustlog info mysrv:", out: []string{"auth: trusted", "auth_user_method: tls"}},
		{block: "first-steps", cmd: "bin/trustlog auth whoami mysrv: --explain", out: []string{"Name: me"}},
		{block: "first-steps", cmd: "fp=$(openssl x509 -in alice.crt"},
		{block: "first-steps", cmd: `bin/trustlog config trust remove "$fp"`},
		{block: "first-steps", cmd: "curl -sk --cert alice.crt", out: []string{`"auth":"untrusted"`}},

		{block: "incus", cmd: "incus remote add t"},
		{block: "incus", cmd: "incus query t:/1.0", out: []string{`"auth": "trusted"`, `"auth_user_method": "tls"`}},
		{block: "incus", cmd: "incus config trust list t:", out: []string{"incus", "me"}},

		{block: "trust-tokens", cmd: "bin/trustlog config trust add --name bob -q > bob.token"},
		{block: "trust-tokens", cmd: "bin/trustlog config trust list-tokens", out: []string{"bob"}},
		{block: "trust-tokens", machine: "bob", cmd: `trustlog remote add mysrv "$(cat bob.token)"`, out: []string{"Client certificate now trusted by server: mysrv"}},
		{block: "trust-tokens", machine: "bob", cmd: "trustlog info mysrv:", out: []string{"auth: trusted", "auth_user_method: tls"}},
		{block: "trust-tokens", machine: "eve", cmd: `trustlog remote add mysrv "$(cat bob.token)"`, rc: 1},
	})

	// bob's token: its secret must appear neither in the stream nor in the
	// daemon's log (the scan runs when the test ends).
	raw, err := os.ReadFile(filepath.Join(h.work, "bob.token"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.DecodeCertificateAddToken(string(raw))
	if err != nil || tok.Secret == "" {
		t.Fatalf("bob.token: %v", err)
	}
	s.mu.Lock()
	s.secrets = append(s.secrets, tok.Secret)
	s.mu.Unlock()
}

// TestPKIDoc runs docs/pki.md: a CA made by openssl, a client certificate it
// signs, PKI mode turned on, then the CRL recipe (openssl ca with the
// shipped examples/pki/ca.cnf) revoking that client.
func TestPKIDoc(t *testing.T) {
	t.Parallel()
	root := toolbin.RepoRoot(t)
	trustlog := toolbin.Build(t, ".", toolbin.Module+"/cli", "trustlog-e2e")
	h := newDocHost(t)
	s := h.start(t)

	cmds := docCommands(t, filepath.Join(root, "docs", "pki.md"), "pki-ca", "pki-trust", "pki-crl")
	h.substitute(t, cmds, []docSubst{
		{old: "127.0.0.1:8443", new: s.d.HTTPSAddr()},
		{old: "examples/pki/ca.cnf", new: filepath.Join(root, "examples", "pki", "ca.cnf")},
	})
	results := h.run(t, cmds, trustlog, "")

	checkDoc(t, cmds, results, []docExpect{
		{block: "pki-ca", cmd: "openssl req -x509"},
		{block: "pki-ca", cmd: "trustlog pki ca set ca.crt"},
		{block: "pki-ca", cmd: "openssl req -newkey"},
		{block: "pki-ca", cmd: "openssl x509 -req -in alice.csr"},
		{block: "pki-trust", cmd: "trustlog config set core.trust_ca_certificates true"},
		{block: "pki-trust", cmd: "curl -sk --cert alice.crt", out: []string{`"auth":"trusted"`, `"auth_user_method":"pki"`}},
		{block: "pki-crl", cmd: "touch index.txt"},
		{block: "pki-crl", cmd: "openssl ca -config", out: []string{"Database updated"}},
		{block: "pki-crl", cmd: "openssl ca -config"},
		{block: "pki-crl", cmd: "trustlog pki crl set ca.crl"},
		{block: "pki-crl", cmd: "trustlog pki crl show", out: []string{"total: 1", "stale: false"}},
		{block: "pki-crl", cmd: "curl -sk --cert alice.crt", out: []string{`"auth":"untrusted"`}},
	})
}

// docHost is where a document's commands run: a working directory and the
// HOME of each machine the document names ("" is the server's).
type docHost struct {
	work  string
	homes map[string]string
	base  string // parent of the homes
}

// newDocHost makes the working directory and the server's HOME. Paths stay
// short: the daemon's unix socket lives under the server's HOME.
func newDocHost(t *testing.T) *docHost {
	t.Helper()
	for _, tool := range []string{"bash", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the documentation's commands need %s: %v", tool, err)
		}
	}
	base, err := os.MkdirTemp("", "doc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	h := &docHost{work: filepath.Join(base, "w"), base: base, homes: map[string]string{"": filepath.Join(base, "srv")}}
	for _, d := range []string{h.work, h.homes[""]} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// start runs trustlogd on the server HOME's default data directory, with
// HTTPS on a free loopback port.
func (h *docHost) start(t *testing.T) *server {
	t.Helper()
	var logBuf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{
		Dir:          filepath.Join(h.homes[""], ".local", "share", "trustlog"),
		HTTPSAddress: "127.0.0.1:0",
		Logger:       slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, nil)),
	})
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return newServer(t, d, &logBuf)
}

// docCommand is one command of a marked block, continuation lines joined.
type docCommand struct {
	block   string // the marker's NAME
	line    int    // where the command starts in the document
	text    string // as written, without its trailing comment
	run     string // what runs: text after substitutions
	machine string // "" for the server, else the name in "# on <name>'s machine"
}

var (
	docMarker  = regexp.MustCompile(`^<!-- doc-test: ([a-z0-9-]+) -->$`)
	docOn      = regexp.MustCompile(`^# on ([a-z]+)'s machine`)
	docBack    = regexp.MustCompile(`^# back on the server`)
	docComment = regexp.MustCompile(`\s{2,}#.*$`) // a trailing comment: two spaces or more, then #
)

// docCommands extracts the commands of the blocks marked with names, in the
// order of the document; every name must mark exactly one ```sh block.
func docCommands(t *testing.T, doc string, names ...string) []docCommand {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	found := map[string]bool{}
	var cmds []docCommand
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		m := docMarker.FindStringSubmatch(lines[i])
		if m == nil || !want[m[1]] {
			continue
		}
		name := m[1]
		if found[name] {
			t.Fatalf("%s: two blocks are marked %q", doc, name)
		}
		found[name] = true
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			t.Fatalf("%s:%d: the marker %q is not followed by a ```sh fence", doc, i+1, name)
		}
		machine := ""
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			line := strings.TrimSpace(lines[i])
			switch {
			case line == "":
			case strings.HasPrefix(line, "#"):
				if m := docOn.FindStringSubmatch(line); m != nil {
					machine = m[1]
				} else if docBack.MatchString(line) {
					machine = ""
				}
			default:
				c := docCommand{block: name, line: i + 1, machine: machine}
				for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
					i++
					line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
				}
				c.text = docComment.ReplaceAllString(line, "")
				c.run = c.text
				cmds = append(cmds, c)
			}
		}
		if i == len(lines) {
			t.Fatalf("%s: the block marked %q has no closing fence", doc, name)
		}
	}
	for _, n := range names {
		if !found[n] {
			t.Fatalf("%s: no block is marked <!-- doc-test: %s -->", doc, n)
		}
	}
	return cmds
}

// docSubst replaces old with new in the commands: everywhere, or, with
// whole, a command that is exactly old. Each must apply at least once.
type docSubst struct {
	old, new string
	whole    bool
}

// substitute applies subs to cmds, and gives every machine a HOME.
func (h *docHost) substitute(t *testing.T, cmds []docCommand, subs []docSubst) {
	t.Helper()
	for _, sub := range subs {
		n := 0
		for i := range cmds {
			switch {
			case sub.whole && cmds[i].run == sub.old:
				cmds[i].run = sub.new
				n++
			case !sub.whole && strings.Contains(cmds[i].run, sub.old):
				cmds[i].run = strings.ReplaceAll(cmds[i].run, sub.old, sub.new)
				n++
			}
		}
		if n == 0 {
			t.Fatalf("no command contains %q any more: update the test with the document", sub.old)
		}
	}
	for _, c := range cmds {
		if _, ok := h.homes[c.machine]; !ok {
			home := filepath.Join(h.base, c.machine)
			if err := os.Mkdir(home, 0o700); err != nil {
				t.Fatal(err)
			}
			h.homes[c.machine] = home
		}
	}
}

// docResult is what one command did.
type docResult struct {
	rc  int
	out string // stdout and stderr together
}

// run runs the commands in one bash session, in the working directory, with
// trustlog (and incus, unless "") on PATH, and returns each one's result.
// Standard input is empty: a command that prompts fails.
func (h *docHost) run(t *testing.T, cmds []docCommand, trustlog, incus string) []docResult {
	t.Helper()
	tools := filepath.Join(h.base, "tools")
	if err := os.Mkdir(tools, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(trustlog, filepath.Join(tools, "trustlog")); err != nil {
		t.Fatal(err)
	}
	if incus != "" {
		if err := os.Symlink(incus, filepath.Join(tools, "incus")); err != nil {
			t.Fatal(err)
		}
	}
	// Each command runs through eval, so that one that does not even parse
	// (a placeholder like <token> left in) fails alone.
	var script strings.Builder
	for i, c := range cmds {
		fmt.Fprintf(&script, "export HOME=%s\nprintf '\\n\\036begin %d\\n'\neval '%s'\nprintf '\\n\\036end %d %%d\\n' \"$?\"\n",
			h.homes[c.machine], i, strings.ReplaceAll(c.run, "'", `'\''`), i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", script.String())
	cmd.Dir = h.work
	cmd.WaitDelay = 5 * time.Second
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "PATH" || k == "BASH_ENV" || k == "ENV" ||
			strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "TRUSTLOG_") || strings.HasPrefix(k, "INCUS_") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "HOME="+h.homes[""], "PATH="+tools+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("bash: %v", err) // the commands it did run are checked below
	}

	results := make([]docResult, len(cmds))
	for i := range results {
		results[i].rc = -1
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	cur := -1
	var buf strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "\036begin "); ok {
			cur, _ = strconv.Atoi(rest)
			buf.Reset()
			continue
		}
		if rest, ok := strings.CutPrefix(line, "\036end "); ok && cur >= 0 && cur < len(results) {
			var n, rc int
			if _, err := fmt.Sscanf(rest, "%d %d", &n, &rc); err == nil && n == cur {
				results[cur] = docResult{rc: rc, out: buf.String()}
			}
			cur = -1
			continue
		}
		buf.WriteString(line + "\n")
	}
	return results
}

// docExpect is what a command must do: exit with rc, print each of out.
// Expectations are listed in document order; each takes the next command
// of its block (and machine) that begins with cmd.
type docExpect struct {
	block, machine, cmd string
	rc                  int
	out                 []string
}

// checkDoc checks every command: those an expectation names against it,
// the others for a zero exit status.
func checkDoc(t *testing.T, cmds []docCommand, results []docResult, expects []docExpect) {
	t.Helper()
	matched := map[int]docExpect{}
	next := 0
	for _, e := range expects {
		i := next
		for ; i < len(cmds); i++ {
			c := cmds[i]
			if c.block == e.block && c.machine == e.machine && strings.HasPrefix(c.text, e.cmd) {
				break
			}
		}
		if i == len(cmds) {
			t.Errorf("no command %q in block %q (machine %q) after line %d: update the test with the document",
				e.cmd, e.block, e.machine, cmds[min(next, len(cmds)-1)].line)
			continue
		}
		matched[i] = e
		next = i + 1
	}
	for i, c := range cmds {
		r := results[i]
		e := matched[i]
		where := fmt.Sprintf("%s line %d (%s)", c.block, c.line, c.text)
		if c.machine != "" {
			where += " on " + c.machine + "'s machine"
		}
		switch {
		case r.rc == -1:
			t.Errorf("%s: did not finish", where)
		case r.rc != e.rc:
			t.Errorf("%s: exit status %d, want %d\n%s", where, r.rc, e.rc, r.out)
		}
		for _, want := range e.out {
			if !strings.Contains(r.out, want) {
				t.Errorf("%s: output lacks %q\n%s", where, want, r.out)
			}
		}
	}
}

// TestDocsIndex: docs/README.md links every page under docs/, and each of
// its relative links names a file that exists.
func TestDocsIndex(t *testing.T) {
	t.Parallel()
	docs := filepath.Join(toolbin.RepoRoot(t), "docs")
	index, err := os.ReadFile(filepath.Join(docs, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`).FindAllStringSubmatch(string(index), -1) {
		target := m[1]
		if strings.Contains(target, "://") {
			continue
		}
		path := filepath.Clean(filepath.Join(docs, filepath.FromSlash(target)))
		page, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("docs/README.md links %s: %v", target, err)
			continue
		}
		linked[path] = true
		if anchor := strings.TrimPrefix(m[2], "#"); anchor != "" && !slices.Contains(headingAnchors(string(page)), anchor) {
			t.Errorf("docs/README.md links %s#%s: no such heading", target, anchor)
		}
	}
	pages, err := filepath.Glob(filepath.Join(docs, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if filepath.Base(p) != "README.md" && !linked[p] {
			t.Errorf("docs/README.md does not list docs/%s", filepath.Base(p))
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown page: lower case, punctuation dropped, spaces as hyphens.
func headingAnchors(page string) []string {
	var out []string
	for line := range strings.Lines(page) {
		h, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		h = strings.TrimSpace(strings.TrimLeft(h, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
