package deprule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// mod is the module path; patterns starting with "./" are relative to it.
const mod = toolbin.Module

// listTimeout bounds `go list`, which may have to load every dependency.
const listTimeout = 5 * time.Minute

// rule forbids the packages selected by from to depend, directly or
// through other packages, on the packages matched by forbid.
//
// Patterns are import paths; "x/..." matches x and everything below it;
// a leading "./" stands for the module path.
type rule struct {
	name     string
	from     []string // packages of the module the rule applies to
	except   []string // packages of the module exempt from the rule
	mainOnly bool     // apply to main packages (binaries) only
	forbid   []string // dependencies the selected packages must not have
	allow    []string // exceptions to forbid
	required bool     // fail if from selects no package (guards against typos)
}

// rules is the dependency rule of the architecture (shared DESIGN.md,
// "Dependency rule"): the log knows nothing of its users, handlers know
// nothing of NATS, Lambda or the hosts, the client talks HTTP only, and
// only hosts and test helpers carry the NATS server.
var rules = []rule{
	{
		name:     "events imports nothing of ours",
		from:     []string{"./events"},
		forbid:   []string{"./..."},
		required: true,
	},
	{
		name:     "projections imports only events of ours",
		from:     []string{"./projections/..."},
		forbid:   []string{"./..."},
		allow:    []string{"./events", "./projections/..."},
		required: true,
	},
	{
		name:   "functions import neither NATS, AWS, Lambda nor the hosts",
		from:   []string{"./functions/..."},
		except: []string{"./functions/lambda/..."},
		forbid: []string{
			"github.com/nats-io/...",
			"github.com/aws/...",
			"github.com/awslabs/...",
			"./local/...",
			"./cli/...",
		},
		required: true,
	},
	{
		name:     "only local/ and test helpers link nats-server",
		from:     []string{"./..."},
		except:   []string{"./local/...", "./events/natsstore/natstest"},
		forbid:   []string{"github.com/nats-io/nats-server/..."},
		required: true,
	},
	{
		name: "cli talks HTTP only",
		from: []string{"./cli/..."},
		forbid: []string{
			"./events/...",
			"./projections/...",
			"./local/...",
			"github.com/nats-io/...",
		},
	},
	{
		name:     "Lambda binaries link neither nats-server nor testing",
		from:     []string{"./functions/lambda/..."},
		mainOnly: true,
		forbid:   []string{"github.com/nats-io/nats-server/...", "testing"},
		required: true,
	},
}

// pkg is what the rules need of one package in `go list -json` output.
type pkg struct {
	ImportPath string
	Name       string
	Imports    []string
	DepOnly    bool // a dependency, not matched by ./...
	Error      *struct{ Err string }
}

// graph maps an import path to its package.
type graph map[string]*pkg

// violation is one forbidden dependency of one package.
type violation struct {
	From  string
	Dep   string
	Chain []string // From, ..., Dep
}

func (v violation) String() string {
	return fmt.Sprintf("%s depends on %s:\n\t%s", v.From, v.Dep, strings.Join(v.Chain, "\n\t  -> "))
}

// match reports whether path matches pattern (see rule).
func match(pattern, path string) bool {
	if rest, ok := strings.CutPrefix(pattern, "./"); ok {
		pattern = mod + "/" + rest
	} else if pattern == "." {
		pattern = mod
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// subjects returns, sorted, the packages of the module that r applies to.
func (r rule) subjects(g graph) []string {
	var out []string
	for path, p := range g {
		if p.DepOnly || !match("./...", path) {
			continue
		}
		if !matchAny(r.from, path) || matchAny(r.except, path) {
			continue
		}
		if r.mainOnly && p.Name != "main" {
			continue
		}
		out = append(out, path)
	}
	slices.Sort(out)
	return out
}

// check returns the violations of r in g. For each package it applies to,
// it walks the imports breadth first, so every chain it reports is a
// shortest one, and it does not walk on past a forbidden package: one
// violation names the package where the chain first leaves the rule.
func (r rule) check(g graph) []violation {
	var out []violation
	for _, from := range r.subjects(g) {
		parent := map[string]string{from: ""}
		queue := []string{from}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			p, ok := g[cur]
			if !ok {
				continue // "C", or a package go list did not describe
			}
			for _, imp := range p.Imports {
				if _, seen := parent[imp]; seen {
					continue
				}
				parent[imp] = cur
				if matchAny(r.forbid, imp) && !matchAny(r.allow, imp) {
					out = append(out, violation{From: from, Dep: imp, Chain: chain(parent, imp)})
					continue
				}
				queue = append(queue, imp)
			}
		}
	}
	return out
}

// report turns violations into messages, one per forbidden import edge
// (the last step of a chain): it shows the shortest chain that ends in
// that edge and names the other packages of the rule that reach it too.
func report(vs []violation) []string {
	type edge struct{ importer, dep string }
	groups := map[edge][]violation{}
	var order []edge
	for _, v := range vs {
		e := edge{v.Chain[len(v.Chain)-2], v.Dep}
		if _, ok := groups[e]; !ok {
			order = append(order, e)
		}
		groups[e] = append(groups[e], v)
	}
	msgs := make([]string, 0, len(order))
	for _, e := range order {
		g := groups[e]
		slices.SortStableFunc(g, func(a, b violation) int { return len(a.Chain) - len(b.Chain) })
		msg := g[0].String()
		if len(g) > 1 {
			var others []string
			for _, v := range g[1:] {
				others = append(others, v.From)
			}
			slices.Sort(others)
			msg += fmt.Sprintf("\n\t(%d more packages reach it the same way: %s)", len(others), strings.Join(others, ", "))
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

// chain follows parent links back from dep to the start of the walk.
func chain(parent map[string]string, dep string) []string {
	var c []string
	for p := dep; p != ""; p = parent[p] {
		c = append(c, p)
	}
	slices.Reverse(c)
	return c
}

// goList describes the module's packages and all their dependencies, as
// they are built (test files excluded).
func goList(t *testing.T) graph {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), listTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-deps",
		"-json=ImportPath,Name,Imports,DepOnly,Error", "./...")
	cmd.Dir = toolbin.RepoRoot(t)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list in %s: %v\n%s", cmd.Dir, err, stderr.Bytes())
	}
	g, err := decode(&stdout)
	if err != nil {
		t.Fatalf("go list output: %v", err)
	}
	var broken []string
	for path, p := range g {
		if p.Error != nil {
			broken = append(broken, fmt.Sprintf("%s: %s", path, p.Error.Err))
		}
	}
	if len(broken) > 0 {
		slices.Sort(broken)
		t.Fatalf("go list could not load every package, so the rule cannot be checked:\n%s", strings.Join(broken, "\n"))
	}
	return g
}

// decode reads the stream of JSON objects that `go list -json` prints.
func decode(r io.Reader) (graph, error) {
	g := graph{}
	dec := json.NewDecoder(r)
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return g, nil
		} else if err != nil {
			return nil, err
		}
		g[p.ImportPath] = &p
	}
}

func TestDependencyRule(t *testing.T) {
	t.Parallel()
	g := goList(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			if r.required && len(r.subjects(g)) == 0 {
				t.Fatalf("the rule applies to no package: are its patterns %q right?", r.from)
			}
			for _, msg := range report(r.check(g)) {
				t.Error(msg)
			}
		})
	}
}

// testGraph builds a graph from "path: import import ..." lines; a path
// ending in " (main)" is a main package and a leading "dep " marks a
// dependency outside ./....
func testGraph(lines ...string) graph {
	g := graph{}
	for _, line := range lines {
		head, imports, _ := strings.Cut(line, ":")
		p := &pkg{Name: "lib", Imports: strings.Fields(imports)}
		head = strings.TrimSpace(head)
		if rest, ok := strings.CutPrefix(head, "dep "); ok {
			p.DepOnly, head = true, rest
		}
		if rest, ok := strings.CutSuffix(head, " (main)"); ok {
			p.Name, head = "main", rest
		}
		p.ImportPath = strings.ReplaceAll(head, "~", mod)
		for i, imp := range p.Imports {
			p.Imports[i] = strings.ReplaceAll(imp, "~", mod)
		}
		g[p.ImportPath] = p
	}
	return g
}

// ruleNamed returns the rule of that name from rules.
func ruleNamed(name string) rule {
	for _, r := range rules {
		if r.name == name {
			return r
		}
	}
	panic("no rule named " + name)
}

func TestRuleCheck(t *testing.T) {
	t.Parallel()
	const nats = "github.com/nats-io/nats.go"
	const server = "github.com/nats-io/nats-server/v2/server"
	tests := []struct {
		name  string
		rule  rule
		graph graph
		want  [][]string // chains, ~ for the module path
	}{
		{
			name: "ok/only-allowed-deps",
			rule: ruleNamed("projections imports only events of ours"),
			graph: testGraph(
				"~/projections: ~/events ~/projections/sub fmt",
				"~/projections/sub: ~/events",
				"~/events: fmt",
				"dep fmt:",
			),
		},
		{
			name: "ok/missing-directories",
			rule: ruleNamed("cli talks HTTP only"),
			graph: testGraph(
				"~/events: fmt",
				"dep fmt:",
			),
		},
		{
			name: "ok/exempt-package",
			rule: ruleNamed("only local/ and test helpers link nats-server"),
			graph: testGraph(
				"~/local: ~/local/daemon",
				"~/local/daemon: "+server,
				"~/events/natsstore/natstest: "+server,
				"dep "+server+":",
			),
		},
		{
			name: "ok/library-under-lambda-may-use-testing",
			rule: ruleNamed("Lambda binaries link neither nats-server nor testing"),
			graph: testGraph(
				"~/functions/lambda/lambdatest: testing",
				"dep testing:",
			),
		},
		{
			name: "fail/direct-import",
			rule: ruleNamed("events imports nothing of ours"),
			graph: testGraph(
				"~/events: ~/projections",
				"~/projections:",
			),
			want: [][]string{{"~/events", "~/projections"}},
		},
		{
			name: "fail/shortest-transitive-chain",
			rule: ruleNamed("functions import neither NATS, AWS, Lambda nor the hosts"),
			graph: testGraph(
				"~/functions/tokens: ~/functions/commit ~/functions/gate",
				"~/functions/commit: ~/functions/gate",
				"~/functions/gate: ~/events/natsstore",
				"~/events/natsstore: "+nats,
				"dep "+nats+":",
			),
			want: [][]string{
				{"~/functions/commit", "~/functions/gate", "~/events/natsstore", nats},
				{"~/functions/gate", "~/events/natsstore", nats},
				{"~/functions/tokens", "~/functions/gate", "~/events/natsstore", nats},
			},
		},
		{
			name: "fail/stops-at-first-forbidden-package",
			rule: ruleNamed("cli talks HTTP only"),
			graph: testGraph(
				"~/cli: ~/projections",
				"~/projections: ~/events",
				"~/events:",
			),
			want: [][]string{{"~/cli", "~/projections"}},
		},
		{
			name: "fail/lambda-binary-links-testing",
			rule: ruleNamed("Lambda binaries link neither nats-server nor testing"),
			graph: testGraph(
				"~/functions/lambda/certificates (main): ~/functions/certificates",
				"~/functions/certificates: ~/events/natsstore/natstest",
				"~/events/natsstore/natstest: testing "+server,
				"dep testing:",
				"dep "+server+":",
			),
			want: [][]string{
				{"~/functions/lambda/certificates", "~/functions/certificates", "~/events/natsstore/natstest", "testing"},
				{"~/functions/lambda/certificates", "~/functions/certificates", "~/events/natsstore/natstest", server},
			},
		},
		{
			name: "fail/not-exempt-by-prefix-alone",
			rule: ruleNamed("only local/ and test helpers link nats-server"),
			graph: testGraph(
				"~/localx: "+server,
				"dep "+server+":",
			),
			want: [][]string{{"~/localx", server}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got [][]string
			for _, v := range tc.rule.check(tc.graph) {
				got = append(got, v.Chain)
			}
			var want [][]string
			for _, c := range tc.want {
				w := make([]string, len(c))
				for i, p := range c {
					w[i] = strings.ReplaceAll(p, "~", mod)
				}
				want = append(want, w)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	const nats = "github.com/nats-io/nats.go"
	g := testGraph(
		"~/functions/tokens: ~/functions/gate",
		"~/functions/certificates: ~/functions/gate",
		"~/functions/gate: ~/events/natsstore",
		"~/functions/pki: "+nats,
		"~/events/natsstore: "+nats,
		"dep "+nats+":",
	)
	got := report(ruleNamed("functions import neither NATS, AWS, Lambda nor the hosts").check(g))
	want := []string{
		mod + "/functions/gate depends on " + nats + ":\n\t" +
			mod + "/functions/gate\n\t  -> " + mod + "/events/natsstore\n\t  -> " + nats +
			"\n\t(2 more packages reach it the same way: " +
			mod + "/functions/certificates, " + mod + "/functions/tokens)",
		mod + "/functions/pki depends on " + nats + ":\n\t" + mod + "/functions/pki\n\t  -> " + nats,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		path    string
		want    bool
	}{
		{"ok/exact", "./events", mod + "/events", true},
		{"ok/subtree-root", "./events/...", mod + "/events", true},
		{"ok/subtree-child", "./events/...", mod + "/events/natsstore", true},
		{"ok/module-root", "./...", mod, true},
		{"ok/external", "github.com/nats-io/...", "github.com/nats-io/nats.go/jetstream", true},
		{"fail/exact-is-not-subtree", "./events", mod + "/events/natsstore", false},
		{"fail/sibling-prefix", "./events/...", mod + "/eventsx", false},
		{"fail/other-module", "./...", "github.com/trustlog/other", false},
		{"fail/stdlib-prefix", "testing", "testing/fstest", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := match(tc.pattern, tc.path); got != tc.want {
				t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
			}
		})
	}
}
