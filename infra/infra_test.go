package infra_test

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/frontdoor"
)

// open parses a template, resolving Ref to "ref:<name>" (a list of one
// such string for List parameters) where goformation would resolve it to
// nothing: resources, and parameters without a default. The structure
// checks can then see what refers to what.
func open(t *testing.T, path string) *cloudformation.Template {
	t.Helper()
	// goformation registers its YAML tag resolvers in a package-level map
	// on every parse: one parse at a time.
	parseMu.Lock()
	defer parseMu.Unlock()
	ref := func(name string, input any, template any) any {
		if v := intrinsics.Ref(name, input, template); v != nil {
			return v
		}
		target, _ := input.(string)
		if tpl, ok := template.(map[string]any); ok {
			if params, ok := tpl["Parameters"].(map[string]any); ok {
				if p, ok := params[target].(map[string]any); ok {
					if typ, _ := p["Type"].(string); strings.HasPrefix(typ, "List<") {
						return []any{"ref:" + target}
					}
				}
			}
		}
		return "ref:" + target
	}
	tpl, err := goformation.OpenWithOptions(path, &intrinsics.ProcessorOptions{
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{"Ref": ref},
	})
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return tpl
}

var parseMu sync.Mutex

// lambdaDirs lists the function mains under functions/lambda.
func lambdaDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("../functions/lambda")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join("../functions/lambda", e.Name(), "main.go")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// routes are the API paths each function must receive (method ANY unless
// given), from functions/service.
var routes = map[string][]string{
	"server":       {"GET /", "GET /1.0", "PUT /1.0", "PATCH /1.0", "GET /1.0/metadata/configuration"},
	"certificates": {"ANY /1.0/certificates", "ANY /1.0/certificates/{fingerprint}"},
	"operations":   {"ANY /1.0/operations", "ANY /1.0/operations/{id}"},
	"pki":          {"ANY /1.0/trustlog/pki/{proxy+}"},
	"identities":   {"ANY /1.0/auth/identities", "ANY /1.0/auth/identities/{proxy+}"},
	"metrics":      {"GET /1.0/metrics"},
}

// TestSAMTemplate parses infra/template.yaml with goformation and checks
// its structure: every function main has a function built for
// provided.al2023 on arm64 from its zip, on its routes of an HTTP API that
// requires mutual TLS and has no execute-api endpoint, and the authorizer
// is not cached.
func TestSAMTemplate(t *testing.T) {
	t.Parallel()
	tpl := open(t, "template.yaml")
	fns := tpl.GetAllServerlessFunctionResources()
	globals, err := tpl.GetServerlessGlobalFunction()
	if err != nil {
		t.Fatalf("globals: %v", err)
	}
	if globals.Runtime == nil || *globals.Runtime != "provided.al2023" || globals.Handler == nil || *globals.Handler != "bootstrap" ||
		(globals.Architectures == nil || !slices.Equal(*globals.Architectures, []string{"arm64"})) {
		t.Errorf("global function settings: runtime %v handler %v arch %v", globals.Runtime, globals.Handler, globals.Architectures)
	}
	env := globals.Environment.Variables
	for _, k := range []string{"TRUSTLOG_NATS_URL", "TRUSTLOG_GATEWAY", "TRUSTLOG_SEALING_KEY"} {
		if _, ok := env[k]; !ok {
			t.Errorf("global environment lacks %s", k)
		}
	}
	if env["TRUSTLOG_GATEWAY"] != "http" {
		t.Errorf("TRUSTLOG_GATEWAY = %v, want http", env["TRUSTLOG_GATEWAY"])
	}
	byDir := map[string]*serverless.Function{}
	for name, fn := range fns {
		if fn.CodeUri == nil || fn.CodeUri.String == nil {
			t.Errorf("%s: CodeUri is not a path", name)
			continue
		}
		zip := filepath.Base(*fn.CodeUri.String)
		byDir[strings.TrimSuffix(zip, ".zip")] = fn
		if !strings.HasPrefix(*fn.CodeUri.String, "../build/lambda/") {
			t.Errorf("%s: CodeUri %s is not a build:lambdas zip", name, *fn.CodeUri.String)
		}
	}
	for _, dir := range lambdaDirs(t) {
		if dir == "api" {
			continue // the all-in-one function of alb.yaml
		}
		fn, ok := byDir[dir]
		if !ok {
			t.Errorf("functions/lambda/%s has no function in template.yaml", dir)
			continue
		}
		var got []string
		for _, ev := range fn.Events {
			if h := ev.Properties.HttpApiEvent; h != nil {
				if h.ApiId == nil || *h.ApiId != "ref:TrustlogApi" || h.PayloadFormatVersion == nil || *h.PayloadFormatVersion != "2.0" {
					t.Errorf("%s: an HttpApi event not on TrustlogApi with payload 2.0", dir)
				}
				got = append(got, *h.Method+" "+*h.Path)
			}
		}
		slices.Sort(got)
		want := slices.Clone(routes[dir])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s routes = %v, want %v", dir, got, want)
		}
	}
	if sw := byDir["sweeper"]; sw == nil || len(sw.Events) != 1 {
		t.Error("the sweeper has no schedule")
	} else {
		for _, ev := range sw.Events {
			if ev.Properties.ScheduleEvent == nil || ev.Properties.ScheduleEvent.Schedule == "" {
				t.Errorf("sweeper event %+v is not a schedule", ev)
			}
		}
	}
	api, err := tpl.GetServerlessHttpApiWithName("TrustlogApi")
	if err != nil {
		t.Fatal(err)
	}
	if api.DisableExecuteApiEndpoint == nil || !*api.DisableExecuteApiEndpoint {
		t.Error("TrustlogApi keeps its execute-api endpoint: clients could skip mutual TLS")
	}
	if api.Domain == nil || api.Domain.MutualTlsAuthentication == nil || api.Domain.MutualTlsAuthentication.TruststoreUri == nil {
		t.Error("TrustlogApi has no mutual TLS truststore")
	}
	protected, err := tpl.GetServerlessHttpApiWithName("ProtectedApi")
	if err != nil {
		t.Fatal(err)
	}
	auths, _ := protected.Auth.Authorizers.(map[string]any)
	a, _ := auths["TrustlogAuthorizer"].(map[string]any)
	identity, _ := a["Identity"].(map[string]any)
	if protected.Auth.DefaultAuthorizer == nil || *protected.Auth.DefaultAuthorizer != "TrustlogAuthorizer" ||
		a["EnableSimpleResponses"] != true || identity["ReauthorizeEvery"] != float64(0) {
		t.Errorf("ProtectedApi authorizer: default %v, settings %+v (want simple responses, caching off)", protected.Auth.DefaultAuthorizer, a)
	}
}

// authorizerKeys maps each header of package frontdoor to the key of the
// Lambda authorizer's context (functions/lambda/host) it is taken from.
var authorizerKeys = map[string]string{
	frontdoor.HeaderIdentity:    "name",
	frontdoor.HeaderFingerprint: "fingerprint",
	frontdoor.HeaderMethod:      "method",
	frontdoor.HeaderType:        "type",
	frontdoor.HeaderRestricted:  "restricted",
	frontdoor.HeaderProjects:    "projects",
}

// lookalikes returns the spellings of header h that API Gateway treats as
// other headers but a CGI or WSGI backend reads as h: every "-" written as
// "-" or "_", h itself left out. Case matters to neither.
func lookalikes(h string) []string {
	out := []string{""}
	for _, r := range h {
		var next []string
		for _, prefix := range out {
			next = append(next, prefix+string(r))
			if r == '-' {
				next = append(next, prefix+"_")
			}
		}
		out = next
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == h })
}

// TestProtectedApiIdentityHeaders: ProtectedApi gives its backend every
// identity header of package frontdoor, overwritten from the authorizer's
// context (an append would keep a client's copy next to ours), removes
// their "_" spellings, and maps no other X-Trustlog header.
func TestProtectedApiIdentityHeaders(t *testing.T) {
	t.Parallel()
	if got := lookalikes("X-A-B"); !slices.Equal(got, []string{"X-A_B", "X_A-B", "X_A_B"}) {
		t.Fatalf("lookalikes(X-A-B) = %v", got)
	}
	tpl := open(t, "template.yaml")
	protected, err := tpl.GetServerlessHttpApiWithName("ProtectedApi")
	if err != nil {
		t.Fatal(err)
	}
	var node any = protected.DefinitionBody
	for _, k := range []string{"paths", "/{proxy+}", "x-amazon-apigateway-any-method", "x-amazon-apigateway-integration", "requestParameters"} {
		m, _ := node.(map[string]any)
		node = m[k]
	}
	params, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("ProtectedApi's integration has no requestParameters: %v", node)
	}
	want := map[string]any{}
	for _, h := range frontdoor.Headers() {
		key, ok := authorizerKeys[h]
		if !ok {
			t.Errorf("%s: no authorizer context key known for it", h)
			continue
		}
		want["overwrite:header."+h] = "$context.authorizer." + key
		for _, l := range lookalikes(h) {
			want["remove:header."+l] = "''"
		}
	}
	got := map[string]any{}
	for k, v := range params {
		action, name, _ := strings.Cut(k, ":header.")
		if name != "" && frontdoor.Reserved(name) {
			got[action+":header."+name] = v
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ProtectedApi X-Trustlog header mappings (-want +got):\n%s", diff)
	}
}

// aeadPolicies are the ALB security policies whose TLS 1.2 suites, if
// any, are all ECDHE with AES-GCM: the rule of daemon.ServerTLSConfig.
var aeadPolicies = []string{
	"ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
	"ELBSecurityPolicy-TLS13-1-3-2021-06",
}

// TestALBTemplate parses infra/alb.yaml: an HTTPS listener in mutual TLS
// passthrough mode, with TLS 1.2 limited to AEAD suites, forwarding to a
// Lambda target group of the all-in-one function with
// TRUSTLOG_GATEWAY=alb, and a port-80 listener that sends ACME challenges
// there and everything else to HTTPS.
func TestALBTemplate(t *testing.T) {
	t.Parallel()
	tpl := open(t, "alb.yaml")
	var https, http bool
	for name, l := range tpl.GetAllElasticLoadBalancingV2ListenerResources() {
		switch {
		case l.Port != nil && *l.Port == 443:
			https = true
			if l.MutualAuthentication == nil || l.MutualAuthentication.Mode == nil || *l.MutualAuthentication.Mode != "passthrough" {
				t.Errorf("%s: mutual TLS is not in passthrough mode", name)
			}
			policy := ""
			if l.SslPolicy != nil {
				policy = *l.SslPolicy
			}
			if !slices.Contains(aeadPolicies, policy) {
				t.Errorf("%s: security policy %q allows TLS 1.2 suites other than ECDHE with AES-GCM", name, policy)
			}
		case l.Port != nil && *l.Port == 80:
			http = true
			if len(l.DefaultActions) != 1 || l.DefaultActions[0].Type != "redirect" {
				t.Errorf("%s: port 80 does not redirect to HTTPS by default", name)
			}
		}
	}
	if !https || !http {
		t.Errorf("listeners: https %v http %v", https, http)
	}
	rules := tpl.GetAllElasticLoadBalancingV2ListenerRuleResources()
	acme := false
	for _, r := range rules {
		for _, c := range r.Conditions {
			if c.PathPatternConfig != nil && slices.Contains(c.PathPatternConfig.Values, "/.well-known/acme-challenge/*") {
				acme = true
			}
		}
	}
	if !acme {
		t.Error("no rule forwards /.well-known/acme-challenge/* on port 80")
	}
	for name, tg := range tpl.GetAllElasticLoadBalancingV2TargetGroupResources() {
		if tg.TargetType == nil || *tg.TargetType != "lambda" || len(tg.Targets) != 1 {
			t.Errorf("%s: not a Lambda target group", name)
		}
	}
	fns := tpl.GetAllLambdaFunctionResources()
	if len(fns) != 1 {
		t.Fatalf("%d functions, want the one all-in-one function", len(fns))
	}
	for name, fn := range fns {
		if fn.Runtime == nil || *fn.Runtime != "provided.al2023" || !slices.Equal(fn.Architectures, []string{"arm64"}) {
			t.Errorf("%s: runtime %v arch %v", name, fn.Runtime, fn.Architectures)
		}
		if fn.Environment == nil || fn.Environment.Variables["TRUSTLOG_GATEWAY"] != "alb" {
			t.Errorf("%s: TRUSTLOG_GATEWAY is not alb", name)
		}
	}
}

// TestLambdaBuild builds one function as build:lambdas does (linux/arm64,
// no cgo, -tags lambda.norpc) and checks it is a static aarch64 ELF.
func TestLambdaBuild(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, "../functions/lambda/metrics")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("machine %v, want aarch64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked")
		}
	}
}
