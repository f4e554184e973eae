package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp/syntax"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"
	"github.com/coulomb/flex-auth/registry"
)

// costPackage is a package of n rules that all have the condition when
// and all deny with reason r, then the default.
func costPackage(when string, n int) string {
	var b strings.Builder
	b.WriteString("---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n---\n```rules\n")
	for range n {
		fmt.Fprintf(&b, "- reason: r\n  effect: deny\n  when: %q\n", when)
	}
	b.WriteString("```\n")
	return b.String()
}

// A hostileCase is a rule built to cost as much per unit of its estimate
// as it can, and the request that makes it do so.
type hostileCase struct {
	name string
	when string // false for req, so that every rule runs
	req  func() *Request
}

// requestBody is what fills a 64 KiB request body once the JSON around
// the values is paid for.
const requestBody = MaxRequestBytes - 256

func bridgeReq(ctx map[string]any) *Request {
	return &Request{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: ctx}
}

// intList is the longest list of integers a request body holds: [0,0,...].
func intList() []any {
	l := make([]any, requestBody/2)
	for i := range l {
		l[i] = int64(0)
	}
	return l
}

// literalList is a CEL list literal of n zeros.
func literalList(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]" }

var hostileCases = []hostileCase{
	{"concatenation", "context.a + context.a + context.a + context.a + context.a + context.a == 'x'",
		func() *Request { return bridgeReq(map[string]any{"a": strings.Repeat("a", requestBody)}) }},
	{"loop over a request list", "context.l.exists(x, x == 1)",
		func() *Request { return bridgeReq(map[string]any{"l": intList()}) }},
	{"nested loops over literal lists", literalList(120) + ".exists(x, " + literalList(120) + ".exists(y, x + y == 1))",
		func() *Request { return bridgeReq(nil) }},
	{"regular expression", "context.s.matches('[ab]')",
		func() *Request { return bridgeReq(map[string]any{"s": strings.Repeat("c", requestBody)}) }},
	{"anchored regular expression", "context.s.matches('^[ab]{1,200}c')",
		func() *Request { return bridgeReq(map[string]any{"s": strings.Repeat("a", requestBody)}) }},
	{"size of a string", literalList(25) + ".exists(x, size(context.s) == x)",
		func() *Request { return bridgeReq(map[string]any{"s": strings.Repeat("é", requestBody/2)}) }},
	{"number parsing", "double(context.s) == 1.0",
		func() *Request {
			return bridgeReq(map[string]any{"s": "0." + strings.Repeat("0", requestBody-3) + "1"})
		}},
	{"timestamp parsing", "timestamp(context.s) == timestamp('2000-01-01T00:00:00Z')",
		func() *Request {
			return bridgeReq(map[string]any{"s": "2026-01-01T00:00:00." + strings.Repeat("0", requestBody-30) + "Z"})
		}},
	{"membership in a request list", "context.s in context.l",
		func() *Request {
			s := strings.Repeat("a", requestBody/4)
			return bridgeReq(map[string]any{"s": s + "b", "l": []any{s + "c", s + "d", s + "e"}})
		}},
	{"map key hashing", "context.s in context",
		func() *Request { return bridgeReq(map[string]any{"s": strings.Repeat("a", requestBody)}) }},
	{"deep equality", "context.a == context.b",
		func() *Request {
			a, b := make([]any, 1000), make([]any, 1000)
			for i := range a {
				// 1000 strings of 24 bytes, quoted and separated, twice.
				a[i], b[i] = strings.Repeat("a", 24), strings.Repeat("a", 24)
			}
			b[len(b)-1] = "b"
			return bridgeReq(map[string]any{"a": a, "b": b})
		}},
	{"substring search", "context.s.contains('" + strings.Repeat("a", 60) + "b')",
		func() *Request { return bridgeReq(map[string]any{"s": strings.Repeat("a", requestBody)}) }},
}

// atLimit returns the package of as many rules of when as CostLimit
// allows, bound to the example registry, and its estimated cost.
func atLimit(tb testing.TB, when string) (*Evaluator, uint64) {
	tb.Helper()
	s, err := registry.Load(exampleRegistry)
	if err != nil {
		tb.Fatal(err)
	}
	one, err := Parse("one.md", []byte(costPackage(when, 1)))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := mustCostModel(tb, s).estimate(one.rules[0].checked)
	if err != nil {
		tb.Fatal(err)
	}
	n := int(CostLimit / c)
	if n == 0 {
		tb.Fatalf("one rule %q costs %s, over the limit", when, units(c))
	}
	p, err := Parse("limit.md", []byte(costPackage(when, n)))
	if err != nil {
		tb.Fatal(err)
	}
	e, err := NewEvaluator(p, s)
	if err != nil {
		tb.Fatal(err)
	}
	return e, uint64(n) * c
}

// BenchmarkWorstRequest measures the worst requests constructed against
// packages at the cost limit: the bound docs/policy-packages.md states.
// cpu-ns/op is the CPU time of the process per request, garbage
// collection included; cpu-ns/unit the same per unit of the package's
// estimate.
func BenchmarkWorstRequest(b *testing.B) {
	for _, hc := range hostileCases {
		b.Run(hc.name, func(b *testing.B) {
			e, estimate := atLimit(b, hc.when)
			req := hc.req()
			if d, err := e.Evaluate(req); d != (Decision{Deny, "no_rule_matched"}) {
				b.Fatalf("got %v (%v), want every rule to run and the default to decide", d, err)
			}
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			for b.Loop() {
				e.Decide(req)
			}
			b.ReportMetric(float64(estimate), "units/op")
			if cpu1, ok := processCPU(); cpuOK && ok {
				cpu := float64((cpu1 - cpu0).Nanoseconds()) / float64(b.N)
				b.ReportMetric(cpu, "cpu-ns/op")
				b.ReportMetric(cpu/float64(estimate), "cpu-ns/unit")
			}
		})
	}
}

func mustCostModel(tb testing.TB, s *registry.Snapshot) *costModel {
	tb.Helper()
	m, err := newCostModel(registryBounds(s))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// exampleSnapshot returns the ops-warden registry fixture.
func exampleSnapshot(tb testing.TB) *registry.Snapshot {
	tb.Helper()
	s, err := registry.Load(exampleRegistry)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestCostRefused checks that a package that could cost more than
// CostLimit to decide a request of 64 KiB is refused when it is bound, at
// its most expensive rule; among them, those that took seconds or more per
// request when a limit was only counted in loops.
func TestCostRefused(t *testing.T) {
	chain := func(term string, n int) string {
		terms := make([]string, n)
		for i := range terms {
			terms[i] = term
		}
		return strings.Join(terms, " + ")
	}
	tests := []struct {
		name  string
		rules []string // the `when` of each rule; the last is the costly one
	}{
		{"a chain of concatenations", []string{chain("context.a", 240) + " == ''"}},
		{"a chain of concatenations of the subject", []string{"actor == null", chain("subject", 30) + " == ''"}},
		{"a regular expression from the request", []string{"context.s.matches(context.r)"}},
		{"a counted repetition over a request string", []string{"context.s.matches('[ab]{100}c')"}},
		{"a regular expression over a concatenation", []string{"(context.s + context.s).matches('a+b')"}},
		{"nested loops over a request list", []string{"context.l.exists(a, context.l.exists(b, a == b))"}},
		{"a loop building strings", []string{"context.l.map(x, context.s + context.s).size() == 0"}},
		{"a substring taken from the request", []string{"subject.contains(context.x)"}},
		{"membership in a list concatenated with itself", []string{"-1 in (" + chain("context.l", 40) + ")"}},
		{"equality of built lists", []string{"context.l.map(x, context.s) == context.l.map(x, context.t)"}},
		{"size of a string in a loop", []string{"context.l.exists(x, size(context.s) == x)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src strings.Builder
			src.WriteString("---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n---\n```rules\n")
			for i, w := range tt.rules {
				fmt.Fprintf(&src, "- reason: r%d\n  effect: deny\n  when: %q\n", i, w)
			}
			src.WriteString("```\n")
			p, err := Parse("hostile.md", []byte(src.String()))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = NewEvaluator(p, exampleSnapshot(t))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("NewEvaluator: got %v, want an *Error", err)
			}
			wantLine, wantItem := 7+3*(len(tt.rules)-1), fmt.Sprintf("rule %q", fmt.Sprintf("r%d", len(tt.rules)-1))
			if pe.File != "hostile.md" || pe.Line != wantLine || pe.Item != wantItem || !strings.Contains(pe.Msg, "may cost ") ||
				!strings.Contains(pe.Msg, "a package may cost at most "+units(CostLimit)) {
				t.Errorf("got %q, want hostile.md:%d: %s: when: may cost ... at most %s", err, wantLine, wantItem, units(CostLimit))
			}
		})
	}
}

// TestCostRefusedTogether checks that the limit is on a package's rules
// together: many rules that are each cheap are refused, and the message
// says what they cost together.
func TestCostRefusedTogether(t *testing.T) {
	e, _ := atLimit(t, "size(context.s) == 1")
	n := len(e.pkg.rules)
	p, err := Parse("many.md", []byte(costPackage("size(context.s) == 1", n+1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewEvaluator(p, exampleSnapshot(t))
	if err == nil || !strings.Contains(err.Error(), "(its rules together: ") {
		t.Errorf("%d rules: got %v, want the cost limit refused with what the rules cost together", n+1, err)
	}
}

// TestCostAccepted checks packages that must stay within the limit: the
// ops-warden example, with the fixture and with 100,000 actors, and rules
// that read request values in ways that cost little.
func TestCostAccepted(t *testing.T) {
	p, err := Load(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*registry.Snapshot{exampleSnapshot(t), largeSnapshot(p.Name())} {
		if _, err := NewEvaluator(p, s); err != nil {
			t.Errorf("example with %d actors: %v", len(s.Actors), err)
		}
		if c := packageCost(t, p, s); c > 10_000 {
			t.Errorf("example with %d actors: estimated at %s units, want at most 10,000", len(s.Actors), units(c))
		}
	}
	for _, when := range []string{
		"'ops' in context.groups",
		"context.l.exists(x, x == 1)",
		"subject.matches('^iam:[a-z0-9-]{1,63}$')",
		"subject.startsWith('iam:') && size(subject) < 100",
		"actor.subjects.exists(s, s.startsWith('iam:') && s.endsWith(actor.name))",
		"timestamp(context.t) > timestamp('2026-01-01T00:00:00Z')",
		"context.principal == actor.principal && context.m == {'a': 1}",
	} {
		p, err := Parse("ok.md", []byte(costPackage(when, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewEvaluator(p, exampleSnapshot(t)); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
}

// packageCost is what checkCost estimates p to cost with the actors of s.
func packageCost(tb testing.TB, p *Package, s *registry.Snapshot) uint64 {
	tb.Helper()
	var total uint64
	m := mustCostModel(tb, s)
	for _, r := range p.rules {
		c, err := m.estimate(r.checked)
		if err != nil {
			tb.Fatal(err)
		}
		total += c
	}
	return total
}

// TestCostDependsOnTheRegistry checks that the actors bound count: a rule
// looping over an actor's subjects is accepted with the fixture and
// refused with an actor bound to 100,000 subjects.
func TestCostDependsOnTheRegistry(t *testing.T) {
	p, err := Parse("subjects.md", []byte(costPackage("actor.subjects.exists(s, s.contains('role/') && size(s) > 10)", 1)))
	if err != nil {
		t.Fatal(err)
	}
	snap := exampleSnapshot(t)
	if _, err := NewEvaluator(p, snap); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	actors := append([]registry.Actor(nil), snap.Actors...)
	subjects := []string{actors[0].Name, registry.IAMSubject(actors[0].Name)}
	for i := range 100_000 {
		subjects = append(subjects, fmt.Sprintf("iam:role/r%06d", i))
	}
	actors[0].Subjects = subjects
	if _, err := NewEvaluator(p, registry.New(snap.Source, snap.PolicyPackage, actors)); err == nil {
		t.Errorf("an actor with %d subjects: got no error, want the cost limit to refuse the loop over them", len(subjects))
	}
}

// TestCostAtLimit checks that the limit is inclusive: as many rules as it
// allows are accepted, one more is refused.
func TestCostAtLimit(t *testing.T) {
	e, estimate := atLimit(t, "double(context.s) > 0.0")
	if estimate > CostLimit || estimate < CostLimit*9/10 {
		t.Fatalf("estimate %s, want just under %s", units(estimate), units(CostLimit))
	}
	p, err := Parse("over.md", []byte(costPackage("double(context.s) > 0.0", len(e.pkg.rules)+1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEvaluator(p, exampleSnapshot(t)); err == nil {
		t.Errorf("%d rules: got no error, want the cost limit", len(e.pkg.rules)+1)
	}
}

// TestEstimateBoundsActualCost checks the estimates against what cel-go
// counts while evaluating the worst requests: the estimate, with the
// request and actor bounds it assumes, is never below. The requests are
// real: each fits in a 64 KiB body.
func TestEstimateBoundsActualCost(t *testing.T) {
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	example, err := Load(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("é", requestBody/2)
	cases := hostileCases
	for _, r := range example.rules {
		for _, req := range []*Request{
			{Subject: big, Resource: "agt-state-hub-bridge"},
			{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"principal": big}},
			{Subject: "iam:agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": big}},
		} {
			cases = append(cases, hostileCase{r.decision.Reason, r.when, func() *Request { return req }})
		}
	}
	snap := exampleSnapshot(t)
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			req := hc.req()
			body, err := json.Marshal(map[string]any{"subject": req.Subject, "resource": req.Resource, "context": req.Context})
			if err != nil || len(body) > MaxRequestBytes {
				t.Fatalf("request of %d bytes (%v), want at most %d", len(body), err, MaxRequestBytes)
			}
			p, err := Parse("one.md", []byte(costPackage(hc.when, 1)))
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewEvaluator(p, snap)
			if err != nil {
				t.Fatal(err)
			}
			r := p.rules[0]
			estimate, err := mustCostModel(t, snap).estimate(r.checked)
			if err != nil {
				t.Fatal(err)
			}
			prog, err := env.Program(r.checked, cel.CostTracking(nil))
			if err != nil {
				t.Fatal(err)
			}
			a := &activation{}
			a.reset(e, req)
			_, det, _ := prog.Eval(a)
			if actual := det.ActualCost(); actual == nil || *actual > estimate {
				t.Errorf("cel-go counted %v units, over the estimate %s", actual, units(estimate))
			}
		})
	}
}

func TestMaxWidth(t *testing.T) {
	for _, tt := range []struct {
		re   string
		want uint64
	}{
		{"abc", 3},
		{"^[a-z0-9-]{1,63}$", 63},
		{"^(ab|c)?d$", 3},
		{"a*", math.MaxUint64},
		{"x(?:a|b)+", math.MaxUint64},
		{"é{2,4}", 4},
		{"^$", 0},
		{`\bfoo\b`, 3},
	} {
		re, err := syntax.Parse(tt.re, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := maxWidth(re.Simplify()); got != tt.want {
			t.Errorf("maxWidth(%q): got %d, want %d", tt.re, got, tt.want)
		}
	}
}
