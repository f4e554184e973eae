package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/coulomb/flex-auth/registry"
)

func TestDecideExample(t *testing.T) {
	e := exampleEvaluator(t)
	bridge := func(ctx map[string]any) *Request {
		return &Request{Subject: "iam:agt-state-hub-bridge", Action: "ssh.sign", Resource: "agt-state-hub-bridge", Context: ctx}
	}
	allow := Decision{Allow, "signing_policy_matched"}
	ttlDeny := Decision{Deny, "ttl_out_of_bounds"}
	tests := []struct {
		name string
		req  *Request
		want Decision
	}{
		{"allow", bridge(map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)}), allow},
		{"allow by name", &Request{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": int64(1)}}, allow},
		{"empty action is ssh.sign", &Request{Subject: "adm-example", Resource: "adm-example", Context: map[string]any{"ttl_hours": int64(48)}}, allow},
		{"unknown actor", &Request{Subject: "agt-x", Action: "ssh.sign", Resource: "agt-x"}, Decision{Deny, "unknown_actor_resource"}},
		{"empty resource", &Request{Subject: "adm-example"}, Decision{Deny, "unknown_actor_resource"}},
		{"wrong action", &Request{Subject: "adm-example", Action: "ssh.exec", Resource: "adm-example"}, Decision{Deny, "action_not_supported"}},
		{"another actor's subject", &Request{Subject: "iam:adm-example", Resource: "atm-backup-daily"}, Decision{Deny, "subject_not_bound"}},
		{"empty subject", &Request{Resource: "atm-backup-daily"}, Decision{Deny, "subject_not_bound"}},
		{"principal mismatch", bridge(map[string]any{"principal": "adm-full", "ttl_hours": int64(1)}), Decision{Deny, "principal_not_allowed"}},
		{"principal null", bridge(map[string]any{"principal": nil, "ttl_hours": int64(1)}), Decision{Deny, "principal_not_allowed"}},
		{"principal a list", bridge(map[string]any{"principal": []any{"agt-task-bridge"}, "ttl_hours": int64(1)}), Decision{Deny, "principal_not_allowed"}},
		{"ttl 0", bridge(map[string]any{"ttl_hours": int64(0)}), ttlDeny},
		{"ttl 1", bridge(map[string]any{"ttl_hours": int64(1)}), allow},
		{"ttl max", bridge(map[string]any{"ttl_hours": int64(24)}), allow},
		{"ttl max+1", bridge(map[string]any{"ttl_hours": int64(25)}), ttlDeny},
		{"ttl 999", bridge(map[string]any{"ttl_hours": int64(999)}), ttlDeny},
		{"ttl huge", bridge(map[string]any{"ttl_hours": int64(1) << 62}), ttlDeny},
		{"ttl negative", bridge(map[string]any{"ttl_hours": int64(-24)}), ttlDeny},
		{"ttl 1.5", bridge(map[string]any{"ttl_hours": 1.5}), ttlDeny},
		{"ttl 24.0 is a double", bridge(map[string]any{"ttl_hours": 24.0}), ttlDeny},
		{"ttl string", bridge(map[string]any{"ttl_hours": "24"}), ttlDeny},
		{"ttl bool", bridge(map[string]any{"ttl_hours": true}), ttlDeny},
		{"ttl object", bridge(map[string]any{"ttl_hours": map[string]any{"h": int64(1)}}), ttlDeny},
		{"ttl missing", bridge(map[string]any{"principal": "agt-task-bridge"}), ttlDeny},
		{"nil context", bridge(nil), ttlDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Evaluate(tt.req)
			if got != tt.want || err != nil {
				t.Errorf("got %v (err %v), want %v", got, err, tt.want)
			}
			if d := e.Decide(tt.req); d != got {
				t.Errorf("Decide: got %v, want %v as Evaluate", d, got)
			}
		})
	}
}

// ticketPackage reaches its default and fails to evaluate when a request
// lacks the context members its rules read.
const ticketPackage = "---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n---\n" +
	"```rules\n" +
	"- reason: needs_ticket\n  effect: deny\n  when: context.ticket == ''\n" + // line 7
	"- reason: weekend\n  effect: deny\n  when: context.day in ['sat', 'sun']\n" + // line 10
	"- reason: ticketed\n  effect: allow\n  when: context.ticket.startsWith('T-') && actor.type == 'adm'\n" + // line 13
	"```\n"

func ticketEvaluator(t *testing.T) *Evaluator {
	t.Helper()
	p, err := Parse("ticket.md", []byte(ticketPackage))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s, err := registry.Load(exampleRegistry)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEvaluator(p, s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecidePolicyError(t *testing.T) {
	e := ticketEvaluator(t)
	tests := []struct {
		name     string
		ctx      map[string]any
		want     Decision
		wantRule string // the rule an evaluation error names
		wantLine int
		wantErr  string
	}{
		{"no ticket", nil, Decision{Deny, ReasonPolicyError}, "needs_ticket", 7, "no such key: ticket"},
		{"empty ticket", map[string]any{"ticket": ""}, Decision{Deny, "needs_ticket"}, "", 0, ""},
		{"no day", map[string]any{"ticket": "T-1"}, Decision{Deny, ReasonPolicyError}, "weekend", 10, "no such key: day"},
		{"weekend", map[string]any{"ticket": "T-1", "day": "sun"}, Decision{Deny, "weekend"}, "", 0, ""},
		{"ticketed", map[string]any{"ticket": "T-1", "day": "mon"}, Decision{Allow, "ticketed"}, "", 0, ""},
		{"default", map[string]any{"ticket": "X-1", "day": "mon"}, Decision{Deny, "no_rule_matched"}, "", 0, ""},
		{"ticket not a string", map[string]any{"ticket": int64(5), "day": "mon"}, Decision{Deny, ReasonPolicyError}, "ticketed", 13, "no such overload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Subject: "adm-example", Resource: "adm-example", Context: tt.ctx}
			got, err := e.Evaluate(req)
			if got != tt.want {
				t.Errorf("got %v, want %v (err %v)", got, tt.want, err)
			}
			var ee *EvalError
			switch {
			case tt.wantRule == "" && err != nil:
				t.Errorf("err: got %v, want nil", err)
			case tt.wantRule == "":
			case !errors.As(err, &ee):
				t.Errorf("err: got %v, want an *EvalError", err)
			case ee.Rule != tt.wantRule || ee.Line != tt.wantLine || !strings.Contains(ee.Error(), tt.wantErr):
				t.Errorf("err: got rule %q line %d %q, want rule %q line %d and %q", ee.Rule, ee.Line, ee.Error(), tt.wantRule, tt.wantLine, tt.wantErr)
			}
		})
	}
	if got, err := e.Evaluate(nil); got != (Decision{Deny, ReasonPolicyError}) || err == nil {
		t.Errorf("nil request: got %v, %v, want deny policy_error and an error", got, err)
	}
}

// TestChainMatchesRules checks that the one-program chain decides exactly
// as the rules one by one do.
func TestChainMatchesRules(t *testing.T) {
	for _, e := range []*Evaluator{exampleEvaluator(t), ticketEvaluator(t)} {
		if e.pkg.chain == nil {
			t.Fatalf("%s: no chain", e.pkg.file)
		}
		slow := *e
		pkg := *e.pkg
		pkg.chain = nil
		slow.pkg = &pkg
		subjects := []string{"", "adm-example", "iam:agt-state-hub-bridge", "iam:adm-example"}
		resources := []string{"", "adm-example", "agt-state-hub-bridge", "agt-none"}
		contexts := []map[string]any{
			nil, {}, {"ttl_hours": int64(24)}, {"ttl_hours": 1.5}, {"ttl_hours": "24"}, {"ttl_hours": int64(48), "principal": "adm-full"},
			{"ticket": "T-1"}, {"ticket": "", "day": "sat"}, {"ticket": "T-2", "day": "mon"}, {"ticket": []any{}, "day": "mon"},
		}
		n := 0
		for _, sub := range subjects {
			for _, res := range resources {
				for _, act := range []string{"", "ssh.sign", "x"} {
					for _, ctx := range contexts {
						req := &Request{Subject: sub, Action: act, Resource: res, Context: ctx}
						fast, fastErr := e.Evaluate(req)
						want, wantErr := slow.Evaluate(req)
						if fast != want || fmt.Sprint(fastErr) != fmt.Sprint(wantErr) {
							t.Errorf("%s %+v: chain gave %v (%v), rules one by one %v (%v)", e.pkg.file, req, fast, fastErr, want, wantErr)
						}
						n++
					}
				}
			}
		}
		t.Logf("%s: %d requests agree", e.pkg.file, n)
	}
}

// TestActorSemantics checks that an actor behaves in CEL exactly as
// cel-go's own map with the snapshot's member names would, although it is
// read from the registry.Actor on demand.
func TestActorSemantics(t *testing.T) {
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	exprs := []string{
		`actor.name == 'agt-state-hub-bridge'`, `actor.type == 'agt'`, `actor.principal == 'agt-task-bridge'`,
		`actor.default_ttl_hours == 24`, `actor.max_ttl_hours >= 24`, `actor["principal"] == 'agt-task-bridge'`,
		`'iam:agt-state-hub-bridge' in actor.subjects`, `'agt-state-hub-bridge' in actor.subjects`,
		`'iam:adm-example' in actor.subjects`, `'' in actor.subjects`, `dyn(1) in actor.subjects`,
		`actor.subjects.size() == 2`, `size(actor.subjects) == 2`, `actor.subjects[0] == 'agt-state-hub-bridge'`,
		`actor.subjects[2] == 'x'`, `actor.subjects.exists(s, s.startsWith('iam:'))`,
		`actor.subjects + ['x'] == ['agt-state-hub-bridge', 'iam:agt-state-hub-bridge', 'x']`,
		`actor.subjects == ['agt-state-hub-bridge', 'iam:agt-state-hub-bridge']`, `actor.subjects != []`,
		`type(actor.subjects) == list`, `'name' in actor`, `'nope' in actor`, `dyn(1) in actor`, `has(actor.name)`,
		`has(actor.nope)`, `actor.nope == 1`, `actor.size() == 6`, `size(actor) == 6`, `actor.exists(k, k == 'subjects')`,
		`actor.all(k, k != '')`, `actor.map(k, k).size() == 6`, `actor != {}`, `actor == actor`, `type(actor) == map`,
		`dyn(actor).max_ttl_hours == 24`, `actor.max_ttl_hours + 1 == 25`, `actor.name + '!' == 'agt-state-hub-bridge!'`,
		`actor == {'name': 'agt-state-hub-bridge', 'type': 'agt', 'principal': 'agt-task-bridge', 'default_ttl_hours': 24, 'max_ttl_hours': 24, 'subjects': ['agt-state-hub-bridge', 'iam:agt-state-hub-bridge']}`,
	}
	e := exampleEvaluator(t)
	a := e.snap.Lookup("agt-state-hub-bridge")
	if a == nil {
		t.Fatal("example registry has no agt-state-hub-bridge")
	}
	// cel-go's own map over the same members, as NewEvaluator once built.
	want := types.NewMap(types.DefaultTypeAdapter, map[string]ref.Val{
		"name": types.String(a.Name), "type": types.String(a.Type), "principal": types.String(a.Principal),
		"default_ttl_hours": types.Int(a.DefaultTTLHours), "max_ttl_hours": types.Int(a.MaxTTLHours),
		"subjects": types.NewStringList(types.DefaultTypeAdapter, a.Subjects),
	})
	got, ok := e.actor("agt-state-hub-bridge")
	if !ok {
		t.Fatal("Evaluator does not find agt-state-hub-bridge")
	}
	for _, src := range exprs {
		t.Run(src, func(t *testing.T) {
			ast, iss := env.Compile(src)
			if iss.Err() != nil {
				t.Fatalf("compile: %v", iss.Err())
			}
			prog, err := env.Program(ast)
			if err != nil {
				t.Fatal(err)
			}
			wantOut, _, wantErr := prog.Eval(map[string]any{"actor": want, "context": map[string]any{}})
			gotOut, _, gotErr := prog.Eval(map[string]any{"actor": got, "context": map[string]any{}})
			if (gotErr == nil) != (wantErr == nil) || gotErr == nil && gotOut.Equal(wantOut) != types.True {
				t.Errorf("got %v (err %v), want %v (err %v) as with cel-go's map", gotOut, gotErr, wantOut, wantErr)
			}
		})
	}
}

// TestEvaluatorUnsortedSnapshot checks that a snapshot built by hand, not
// sorted the way Load and New sort, still finds its actors and subjects.
func TestEvaluatorUnsortedSnapshot(t *testing.T) {
	e := exampleEvaluator(t)
	s := *e.snap
	s.Actors = slices.Clone(s.Actors)
	slices.Reverse(s.Actors)
	for i := range s.Actors {
		s.Actors[i].Subjects = slices.Clone(s.Actors[i].Subjects)
		slices.Reverse(s.Actors[i].Subjects)
	}
	u, err := NewEvaluator(e.pkg, &s)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range s.Actors {
		for _, sub := range []string{a.Name, registry.IAMSubject(a.Name), "iam:nobody"} {
			req := &Request{Subject: sub, Resource: a.Name, Context: map[string]any{"ttl_hours": int64(a.MaxTTLHours)}}
			if got, want := u.Decide(req), e.Decide(req); got != want {
				t.Errorf("%s as %s: got %v, want %v (as with the sorted snapshot)", a.Name, sub, got, want)
			}
		}
	}
}

// TestContextSemantics checks that the request context behaves in CEL
// exactly as cel-go's own map over the same Go map would.
func TestContextSemantics(t *testing.T) {
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := map[string]any{
		"ttl_hours": int64(24), "principal": "agt-task-bridge", "f": 1.5, "s": "x",
		"b": true, "n": nil, "l": []any{int64(1), "a"}, "m": map[string]any{"k": "v"},
	}
	exprs := []string{
		`context.ttl_hours == 24`, `context.principal == actor.principal`, `context["s"] == "x"`,
		`has(context.f)`, `has(context.nope)`, `'b' in context`, `'nope' in context`,
		`context.size() == 8`, `size(context) == 8`, `context.exists(k, k == 'm')`, `context.all(k, k != '')`,
		`context.m.k == 'v'`, `context.l[1] == 'a'`, `1 in context.l`, `context.n == null`, `context.b`,
		`context == {}`, `context != {'ttl_hours': 24}`, `type(context) == map`, `context.f > 1`,
		`context.nope == 1`, `dyn(context)[1] == 1`, `context.ttl_hours + 1 == 25`, `context.s + context.s == 'xx'`,
		`context.principal in actor.subjects`, `context.m == {'k': 'v'}`, `{'k': 'v'} == context.m`,
		`context.l == [1, 'a']`, `context.f == 1.5 && context.f != 2`, `context.filter(k, k.size() == 1).size() == 4`,
		`context.map(k, k).size() == 8`, `dyn(context).ttl_hours == 24`, `context.?ttl_hours.orValue(0) == 24`,
	}
	e := exampleEvaluator(t)
	actor, _ := e.actor("agt-state-hub-bridge")
	for _, src := range exprs {
		t.Run(src, func(t *testing.T) {
			ast, iss := env.Compile(src)
			if iss.Err() != nil {
				if strings.Contains(src, "?") { // optional syntax is not enabled
					return
				}
				t.Fatalf("compile: %v", iss.Err())
			}
			prog, err := env.Program(ast)
			if err != nil {
				t.Fatal(err)
			}
			want, _, wantErr := prog.Eval(map[string]any{
				"context": types.NewStringInterfaceMap(types.DefaultTypeAdapter, ctx), "actor": actor.std(),
			})
			a := &activation{}
			a.reset(e, &Request{Subject: "s", Resource: "agt-state-hub-bridge", Context: ctx})
			got, _, gotErr := prog.Eval(a)
			if (gotErr == nil) != (wantErr == nil) || gotErr == nil && got.Equal(want) != types.True {
				t.Errorf("got %v (err %v), want %v (err %v) as with cel-go's map", got, gotErr, want, wantErr)
			}
		})
	}
}

func TestNewEvaluatorMismatch(t *testing.T) {
	p, err := Load(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.Load(exampleRegistry)
	if err != nil {
		t.Fatal(err)
	}
	other := registry.New(s.Source, "other/package", s.Actors)
	_, err = NewEvaluator(p, other)
	if !errors.Is(err, ErrPackageMismatch) {
		t.Fatalf("got %v, want an error wrapping ErrPackageMismatch", err)
	}
	want := `bind policy package "ops-warden/ssh-signing": registry policy_package does not match the policy package: the registry is for "other/package"`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if _, err := NewEvaluator(nil, s); err == nil {
		t.Error("nil package: got no error")
	}
	e, err := NewEvaluator(p, s)
	if err != nil {
		t.Fatal(err)
	}
	if e.Package() != p || e.Registry() != s {
		t.Error("Package and Registry do not return what was bound")
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	src := ticketPackage + "```tests\n" +
		"- name: passes\n  request: {subject: adm-example, resource: adm-example, context: {ticket: ''}}\n  expect: {effect: deny, reason: needs_ticket}\n" +
		"- name: fails\n  request: {subject: adm-example, resource: adm-example, context: {ticket: T-1, day: mon}}\n  expect: {effect: deny, reason: weekend}\n" +
		"- name: errors\n  request: {subject: adm-example, resource: adm-example}\n  expect: {effect: allow, reason: ticketed}\n" +
		"- name: expects the error\n  request: {subject: adm-example, resource: adm-example}\n  expect: {effect: deny, reason: policy_error}\n" +
		"```\n"
	p, err := Parse("ticket.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := registry.Load(exampleRegistry)
	e, err := NewEvaluator(p, s)
	if err != nil {
		t.Fatal(err)
	}
	got := e.RunTests()
	want := []struct {
		name   string
		line   int
		passed bool
		got    Decision
		err    bool
	}{
		{"passes", 18, true, Decision{Deny, "needs_ticket"}, false},
		{"fails", 21, false, Decision{Allow, "ticketed"}, false},
		{"errors", 24, false, Decision{Deny, ReasonPolicyError}, true},
		{"expects the error", 27, true, Decision{Deny, ReasonPolicyError}, true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Line != w.line || g.Passed() != w.passed || g.Got != w.got || (g.Err != nil) != w.err {
			t.Errorf("result %d: got %+v (passed %v), want %+v", i, g, g.Passed(), w)
		}
	}
}

// TestDecideConcurrent runs requests with different answers from many
// goroutines: pooled activations must never leak one request into another.
func TestDecideConcurrent(t *testing.T) {
	e := exampleEvaluator(t)
	cases := []struct {
		req  Request
		want Decision
	}{
		{Request{Subject: "iam:agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)}}, Decision{Allow, "signing_policy_matched"}},
		{Request{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": int64(999)}}, Decision{Deny, "ttl_out_of_bounds"}},
		{Request{Subject: "adm-example", Resource: "adm-example", Context: map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(1)}}, Decision{Deny, "principal_not_allowed"}},
		{Request{Subject: "x", Resource: "agt-none"}, Decision{Deny, "unknown_actor_resource"}},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				c := &cases[(g+i)%len(cases)]
				if got := e.Decide(&c.req); got != c.want {
					t.Errorf("%+v: got %v, want %v", c.req, got, c.want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
