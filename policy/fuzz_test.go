package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/entities"
	"github.com/coulomb/flex-auth/internal/redact/redacttest"
	"github.com/coulomb/flex-auth/registry"
)

// fuzzRequests are decided by every package the fuzzer gets accepted.
var fuzzRequests = []*Request{
	{Subject: "iam:agt-state-hub-bridge", Action: "ssh.sign", Resource: "agt-state-hub-bridge", Context: map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)}},
	{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": int64(999)}},
	{Subject: "adm-example", Action: "x", Resource: "adm-example", Context: map[string]any{"ttl_hours": 1.5, "l": []any{int64(1), "a", nil}, "m": map[string]any{"k": true}}},
	{Subject: "", Resource: "agt-unknown"},
	{Subject: "iam:adm-example", Resource: "atm-backup-daily", Context: map[string]any{"principal": nil, "ttl_hours": "8"}},
}

// FuzzParse feeds the parser arbitrary packages: it must never panic, its
// errors must name a line of the file, and a package it accepts must bind
// to the example registry and decide requests with its own reasons only,
// the chain agreeing with the rules one by one. Run it with
// -fuzzminimizetime=2s: a parse costs milliseconds (CEL compilation), so
// minimizing an input grown from the 13 KB example seed takes the default
// minute, during which no new inputs are tried.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(ticketPackage))
	f.Add([]byte(pkgSrc(goodFront, goodRules, goodTest)))
	f.Add([]byte(pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: context.l.exists(x, x == 1)\n", "")))
	f.Add([]byte(pkgSrc(goodFront, "- reason: a\n  effect: maybe\n  when: actor ==\n", "- name: t\n  request: {subject: a}\n")))
	f.Add([]byte(strings.ReplaceAll(string(example), "\n", "\r\n")))
	f.Add([]byte(openPackage))
	f.Add([]byte("---\n" + goodFront + "---\n<details>\n<summary>Rules</summary>\n\n```rules {.yaml}\n" + goodRules + "```\n\n</details>\n<div>\n~~~Tests\n[]\n~~~\n"))
	// Values with q and z wherever a rule can break, so that the
	// redacted form is compared on every kind of problem (checkRedacted).
	f.Add([]byte(pkgSrc("package: test/qz\nversion: qz\ndefault: {effect: qz, reason: Qz}\nqz: 1\n",
		"- reason: Qz\n  effect: qz\n  when: qz_var\n- reason: q\n  effect: deny\n  when: actor.qz == 1 || \"z\" +\n  qz: 1\n- reason: z\n  effect: deny\n  when: *qz\n",
		"- name: qz\n  request: {subject: q, resource: z, context: {qz: .nan, z: [!qz 1]}}\n  expect: {effect: deny, reason: qz}\n") +
		"\n```rules{qz}\n[]\n```\n\n<details qz>\n```tests\n[]\n```\n</details>\n"))
	// An AuthZEN package, with q and z where its own parts can break.
	f.Add([]byte(pkgSrc("package: test/qz\nversion: 1\ndefault: {effect: deny, reason: no}\ndata: {entities: q/z.yaml, qz: 1}\nresource_types: [q, q, '']\n",
		"- reason: qz\n  effect: allow\n  when: subject.qz == 1 && data.q.z.qz == 2\n",
		"- name: qz\n  request: {subject: {type: q, id: z, qz: 1}, action: {name: ''}, resource: {type: q}, context: qz}\n  expect: {effect: allow, reason: qz}\n")))
	f.Add([]byte(pkgSrc(goodFront+"data: {entities: e.yaml}\nresource_types: [record]\n",
		"- reason: a\n  effect: allow\n  when: subject.id in data.user && action.name == 'read'\n",
		"- name: t\n  request: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: r, id: r}}\n  expect: {effect: allow, reason: a}\n")))
	snap, err := registry.Load(exampleRegistry)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.md", src)
		if err != nil {
			checkParseErrors(t, src, err)
			checkRedacted(t, src, err)
			return
		}
		if p.Name() == "" || p.Default().Reason == "" || !strings.HasPrefix(p.Digest(), "sha256:") {
			t.Fatalf("accepted package without name, default or digest: %q %v %q", p.Name(), p.Default(), p.Digest())
		}
		if p.Model() == ModelAuthZEN {
			fuzzAuthZEN(t, p)
			return
		}
		s := registry.New(snap.Source, p.Name(), slices.Clone(snap.Actors))
		e, err := NewEvaluator(p, s)
		if err != nil {
			// Only a package that may cost too much is refused.
			var pe *Error
			if !errors.As(err, &pe) || pe.File != "fuzz.md" || pe.Line < 1 || !strings.Contains(pe.Msg, "may cost") {
				t.Fatalf("NewEvaluator: got %v, want nil or a cost limit *Error", err)
			}
			return
		}
		slow := *e
		slowPkg := *p
		slowPkg.chain = nil
		slow.pkg = &slowPkg
		reasons := p.Reasons()
		for _, req := range fuzzRequests {
			d, err := e.Evaluate(req)
			checkDecision(t, p, reasons, d, err)
			if _, gerr := e.Grant(req); d.Effect == Allow && gerr != nil {
				t.Fatalf("%+v: allowed (%v) what the registry forbids: %v", req, d, gerr)
			}
			if want, wantErr := slow.Evaluate(req); d != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("%+v: chain gave %v (%v), rules one by one %v (%v)", req, d, err, want, wantErr)
			}
		}
		for _, r := range e.RunTests() {
			checkDecision(t, p, reasons, r.Got, r.Err)
		}
	})
}

// fuzzAuthZEN binds an AuthZEN model package to a small entities
// document and decides its tests and a few requests: every decision is
// one the package can make.
func fuzzAuthZEN(t *testing.T, p *Package) {
	doc, err := entities.Parse("e.yaml", []byte("schema: flex-auth.entities/v1\npolicy_package: "+p.Name()+
		"\nactions: [read]\nentities:\n  user: {alice: {role: admin}, bob: {}}\n  record: {r: {status: active}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEntitiesEvaluator(p, doc)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "may cost") {
			t.Fatalf("NewEntitiesEvaluator: got %v, want nil or a cost limit *Error", err)
		}
		return
	}
	reasons := p.Reasons()
	for _, a := range []*Access{
		{Subject: Entity{Type: "user", ID: "alice"}, Action: Action{Name: "read"}, Resource: Entity{Type: "record", ID: "r"}},
		{Subject: Entity{Type: "user", ID: "carol", Properties: map[string]any{"role": "admin"}}, Action: Action{Name: "write", Properties: map[string]any{"soft": true}},
			Resource: Entity{Type: "spaceship", ID: "x"}, Context: map[string]any{"ttl_hours": int64(1)}},
	} {
		d, err := e.Access(a)
		checkDecision(t, p, reasons, d, err)
	}
	for _, r := range e.RunTests() {
		checkDecision(t, p, reasons, r.Got, r.Err)
	}
}

// checkParseErrors checks that every parse error names the file, a line of
// it, and says something on one line.
func checkParseErrors(t *testing.T, src []byte, err error) {
	t.Helper()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("Parse: got %T %v, want Errors", err, err)
	}
	lines := bytes.Count(src, []byte("\n")) + 1
	for _, e := range errs {
		if e.File != "fuzz.md" || e.Line < 1 || e.Line > lines || e.Msg == "" || strings.Contains(e.Error(), "\n") {
			t.Fatalf("bad error (file has %d lines): %q", lines, e.Error())
		}
	}
}

// checkRedacted checks that the redacted form of a package's errors
// depends on where and which rules it breaks, not on what it holds: the
// same package with q and z swapped has the same one. The two letters are
// in no key, keyword or name a package's structure depends on but
// request, CEL's size, YAML's seq and the HTML tag blockquote, which are
// left as they are (and so are the words a swap would turn into them).
// The "did you mean" hint, which names a key of flex-auth's own, may
// differ: a misspelt key is nearer to request with a q than with a z.
func checkRedacted(t *testing.T, src []byte, err error) {
	t.Helper()
	_, err2 := Parse("fuzz.md", redacttest.SwapQZ(src, "request", "rezuest", "size", "siqe", "seq", "sez", "blockquote", "blockzuote"))
	if err2 == nil {
		t.Fatalf("swapping q and z made the package good: %q", src)
	}
	a := redacttest.WithoutHints(err.(Errors).Redacted())
	b := redacttest.WithoutHints(err2.(Errors).Redacted())
	if a != b {
		t.Fatalf("the redacted form depends on what the package holds:\n%s\n%s", a, b)
	}
}

// checkDecision checks that d is a decision the package can make.
func checkDecision(t *testing.T, p *Package, reasons []string, d Decision, err error) {
	t.Helper()
	if _, ok := slices.BinarySearch(reasons, d.Reason); !ok {
		t.Fatalf("reason %q is none of %v", d.Reason, reasons)
	}
	if d.Effect != Allow && d.Effect != Deny {
		t.Fatalf("effect %q", d.Effect)
	}
	if (d.Reason == ReasonPolicyError) != (err != nil) || d.Reason == ReasonPolicyError && d.Effect != Deny {
		t.Fatalf("decision %v with error %v", d, err)
	}
	if d.Reason == p.Default().Reason && d != p.Default() {
		t.Fatalf("decision %v with the default's reason, want %v", d, p.Default())
	}
}
