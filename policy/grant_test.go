package policy

import (
	"errors"
	"strings"
	"testing"
)

// openPackage allows every request with its first rule (line 8).
const openPackage = "---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\nallow_all: true\n---\n```rules\n" +
	"- reason: open\n  effect: allow\n  when: \"true\"\n```\n"

// openDefaultPackage allows every request with its default.
const openDefaultPackage = "---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: allow, reason: open}\nallow_all: true\n---\n```rules\n[]\n```\n"

func bind(t *testing.T, src string) *Evaluator {
	t.Helper()
	p, err := Parse("open.md", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	e, err := NewEvaluator(p, exampleSnapshot(t))
	if err != nil {
		t.Fatalf("NewEvaluator: %v", err)
	}
	return e
}

// TestBackstop checks that an allow the registry forbids is a deny with
// policy_error whatever the package says, and that the error names the
// rule and the registry rule broken, and quotes nothing of the request.
func TestBackstop(t *testing.T) {
	const br = "agt-state-hub-bridge" // principal agt-task-bridge, max_ttl_hours 24, default 24
	type ctx = map[string]any
	tests := []struct {
		name    string
		req     Request
		wantErr string // "" for an allow
		grant   Grant
	}{
		{"registered, as asked", Request{Subject: "iam:" + br, Resource: br, Context: ctx{"principal": "agt-task-bridge", "ttl_hours": int64(12)}}, "", Grant{"agt-task-bridge", 12}},
		{"no context: the default TTL", Request{Subject: br, Resource: br}, "", Grant{"agt-task-bridge", 24}},
		{"TTL 1", Request{Subject: br, Resource: br, Context: ctx{"ttl_hours": int64(1)}}, "", Grant{"agt-task-bridge", 1}},
		{"unknown actor", Request{Subject: "agt-nobody", Resource: "agt-nobody"}, "the resource is not an actor in the registry", Grant{}},
		{"empty resource", Request{Subject: br}, "the resource is not an actor in the registry", Grant{}},
		{"subject of another actor", Request{Subject: "iam:adm-example", Resource: br}, `the subject is not bound to actor "agt-state-hub-bridge"`, Grant{}},
		{"subject in another case", Request{Subject: "IAM:" + br, Resource: br}, "the subject is not bound", Grant{}},
		{"principal of another actor", Request{Subject: br, Resource: br, Context: ctx{"principal": "adm-full"}}, `context.principal is not actor "agt-state-hub-bridge"'s principal "agt-task-bridge"`, Grant{}},
		{"principal null", Request{Subject: br, Resource: br, Context: ctx{"principal": nil}}, "context.principal is not", Grant{}},
		{"principal a list", Request{Subject: br, Resource: br, Context: ctx{"principal": []any{"agt-task-bridge"}}}, "context.principal is not", Grant{}},
		{"TTL 0", Request{Subject: br, Resource: br, Context: ctx{"ttl_hours": int64(0)}}, `context.ttl_hours is not an integer from 1 to actor "agt-state-hub-bridge"'s max_ttl_hours 24`, Grant{}},
		{"TTL over the max", Request{Subject: br, Resource: br, Context: ctx{"ttl_hours": int64(25)}}, "context.ttl_hours is not an integer from 1", Grant{}},
		{"TTL a string", Request{Subject: br, Resource: br, Context: ctx{"ttl_hours": "24"}}, "context.ttl_hours is not an integer from 1", Grant{}},
		{"TTL a fraction", Request{Subject: br, Resource: br, Context: ctx{"ttl_hours": 1.5}}, "context.ttl_hours is not an integer from 1", Grant{}},
		{"TTL null", Request{Subject: br, Resource: br, Context: ctx{"ttl_hours": nil}}, "context.ttl_hours is not an integer from 1", Grant{}},
	}
	for _, pkg := range []struct{ src, by string }{
		{openPackage, `rule "open" (line 8) allowed a request the registry forbids: `},
		{openDefaultPackage, `the default (reason "open") allowed a request the registry forbids: `},
	} {
		e := bind(t, pkg.src)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d, err := e.Evaluate(&tt.req)
				g, gerr := e.Grant(&tt.req)
				if tt.wantErr == "" {
					if d != (Decision{Allow, "open"}) || err != nil || g != tt.grant || gerr != nil {
						t.Errorf("got %v (%v), grant %+v (%v); want allow open, grant %+v", d, err, g, gerr, tt.grant)
					}
					return
				}
				var ge *GrantError
				if d != (Decision{Deny, ReasonPolicyError}) || !errors.As(err, &ge) {
					t.Fatalf("got %v (%v), want deny policy_error and a *GrantError", d, err)
				}
				if !strings.HasPrefix(err.Error(), pkg.by+tt.wantErr) {
					t.Errorf("error: got %q, want it to start %q", err, pkg.by+tt.wantErr)
				}
				if d := e.Decide(&tt.req); d != (Decision{Deny, ReasonPolicyError}) {
					t.Errorf("Decide: got %v, want deny policy_error", d)
				}
				if !errors.As(gerr, &ge) || !strings.Contains(gerr.Error(), tt.wantErr) {
					t.Errorf("Grant: got %+v, %v, want a *GrantError saying %q", g, gerr, tt.wantErr)
				}
			})
		}
	}
}

// TestBackstopInTests checks that a package's tests see the backstop, as
// the server's clients do: a test that expects an allow the registry
// forbids fails, with the reason.
func TestBackstopInTests(t *testing.T) {
	e := bind(t, openPackage+"```tests\n"+
		"- name: a registered actor\n  request: {subject: adm-example, resource: adm-example}\n  expect: {effect: allow, reason: open}\n"+
		"- name: another actor's subject\n  request: {subject: adm-example, resource: atm-backup-daily}\n  expect: {effect: allow, reason: open}\n"+
		"```\n")
	results := e.RunTests()
	if len(results) != 2 || !results[0].Passed() {
		t.Fatalf("got %+v, want two results, the first passed", results)
	}
	r := results[1]
	if r.Passed() || r.Got != (Decision{Deny, ReasonPolicyError}) || r.Err == nil || !strings.Contains(r.Err.Error(), "the subject is not bound") {
		t.Errorf("got %+v, want a failure: deny policy_error because the subject is not bound", r)
	}
}
