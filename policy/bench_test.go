package policy

import (
	"fmt"
	"os"
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

// BenchmarkDecide measures the allow path of the ops-warden example: every
// rule is evaluated, the last one matches.
func BenchmarkDecide(b *testing.B) {
	e := exampleEvaluator(b)
	req := &Request{
		Subject:  "iam:agt-state-hub-bridge",
		Action:   "ssh.sign",
		Resource: "agt-state-hub-bridge",
		Context:  map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)},
	}
	if d := e.Decide(req); d != (Decision{Allow, "signing_policy_matched"}) {
		b.Fatalf("got %v, want allow signing_policy_matched", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(req)
	}
}

// BenchmarkDecideDeny measures the runbook's deny smoke: a TTL over the
// actor's max, denied by the fifth rule.
func BenchmarkDecideDeny(b *testing.B) {
	e := exampleEvaluator(b)
	req := &Request{
		Subject:  "agt-state-hub-bridge",
		Action:   "ssh.sign",
		Resource: "agt-state-hub-bridge",
		Context:  map[string]any{"ttl_hours": int64(999)},
	}
	if d := e.Decide(req); d != (Decision{Deny, "ttl_out_of_bounds"}) {
		b.Fatalf("got %v, want deny ttl_out_of_bounds", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(req)
	}
}

// BenchmarkDecideUnknownActor measures the cheapest deny: the first rule.
func BenchmarkDecideUnknownActor(b *testing.B) {
	e := exampleEvaluator(b)
	req := &Request{Subject: "agt-nobody", Resource: "agt-nobody"}
	if d := e.Decide(req); d != (Decision{Deny, "unknown_actor_resource"}) {
		b.Fatalf("got %v, want deny unknown_actor_resource", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(req)
	}
}

// BenchmarkDecideParallel measures the allow path from every core at once.
func BenchmarkDecideParallel(b *testing.B) {
	e := exampleEvaluator(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := &Request{
			Subject:  "iam:agt-state-hub-bridge",
			Resource: "agt-state-hub-bridge",
			Context:  map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)},
		}
		for pb.Next() {
			e.Decide(req)
		}
	})
}

// BenchmarkDecideRuleByRule is BenchmarkDecide without the chain: one
// program evaluation per rule, the path a policy error takes.
func BenchmarkDecideRuleByRule(b *testing.B) {
	e := exampleEvaluator(b)
	pkg := *e.pkg
	pkg.chain = nil
	e.pkg = &pkg
	req := &Request{
		Subject:  "iam:agt-state-hub-bridge",
		Action:   "ssh.sign",
		Resource: "agt-state-hub-bridge",
		Context:  map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)},
	}
	if d := e.Decide(req); d != (Decision{Allow, "signing_policy_matched"}) {
		b.Fatalf("got %v, want allow signing_policy_matched", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(req)
	}
}

// BenchmarkParse measures loading the example package: what a reload costs.
func BenchmarkParse(b *testing.B) {
	src, err := os.ReadFile(examplePolicy)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(examplePolicy, src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideLarge measures the allow path over a 100,000-actor
// registry, cycling through actors spread over it: the actor lookup is a
// binary search of the snapshot, and nothing was built per actor.
func BenchmarkDecideLarge(b *testing.B) {
	p, err := Load(examplePolicy)
	if err != nil {
		b.Fatal(err)
	}
	actors := make([]registry.Actor, 100_000)
	for i := range actors {
		name := fmt.Sprintf("agt-bench-%06d", i)
		actors[i] = registry.Actor{Name: name, Type: "agt", Principal: "agt-p", DefaultTTLHours: 8, MaxTTLHours: 24,
			Subjects: []string{name, registry.IAMSubject(name)}}
	}
	e, err := NewEvaluator(p, registry.New(registry.DefaultSource, p.Name(), actors))
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*Request, 1024)
	for i := range reqs {
		name := actors[i*len(actors)/len(reqs)].Name
		reqs[i] = &Request{Subject: registry.IAMSubject(name), Resource: name,
			Context: map[string]any{"principal": "agt-p", "ttl_hours": int64(24)}}
	}
	if d := e.Decide(reqs[0]); d != (Decision{Allow, "signing_policy_matched"}) {
		b.Fatalf("got %v, want allow signing_policy_matched", d)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.Decide(reqs[i%len(reqs)])
		i++
	}
}
