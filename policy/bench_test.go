package policy

import (
	"fmt"
	"os"
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

// allowReq is the allow path of the ops-warden example: every rule is
// evaluated, the last one matches.
func allowReq() *Request {
	return &Request{
		Subject:  "iam:agt-state-hub-bridge",
		Action:   "ssh.sign",
		Resource: "agt-state-hub-bridge",
		Context:  map[string]any{"principal": "agt-task-bridge", "ttl_hours": int64(24)},
	}
}

// benchDecide checks that e decides req as want, then measures Decide.
func benchDecide(b *testing.B, e *Evaluator, req *Request, want Decision) {
	if d := e.Decide(req); d != want {
		b.Fatalf("got %v, want %v", d, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(req)
	}
}

// BenchmarkDecide measures the allow path of the ops-warden example.
func BenchmarkDecide(b *testing.B) {
	benchDecide(b, exampleEvaluator(b), allowReq(), Decision{Allow, "signing_policy_matched"})
}

// BenchmarkDecideDeny measures the runbook's deny smoke: a TTL over the
// actor's max, denied by the fifth rule.
func BenchmarkDecideDeny(b *testing.B) {
	req := &Request{
		Subject:  "agt-state-hub-bridge",
		Action:   "ssh.sign",
		Resource: "agt-state-hub-bridge",
		Context:  map[string]any{"ttl_hours": int64(999)},
	}
	benchDecide(b, exampleEvaluator(b), req, Decision{Deny, "ttl_out_of_bounds"})
}

// BenchmarkDecideUnknownActor measures the cheapest deny: the first rule.
func BenchmarkDecideUnknownActor(b *testing.B) {
	req := &Request{Subject: "agt-nobody", Resource: "agt-nobody"}
	benchDecide(b, exampleEvaluator(b), req, Decision{Deny, "unknown_actor_resource"})
}

// BenchmarkDecideParallel measures the allow path from every core at once.
func BenchmarkDecideParallel(b *testing.B) {
	e := exampleEvaluator(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := allowReq()
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
	benchDecide(b, e, allowReq(), Decision{Allow, "signing_policy_matched"})
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

// largeSnapshot is a registry of 100,000 actors for package pkg, each
// with principal agt-p, TTLs 8 and 24, and its two subjects.
func largeSnapshot(pkg string) *registry.Snapshot {
	actors := make([]registry.Actor, 100_000)
	for i := range actors {
		name := fmt.Sprintf("agt-bench-%06d", i)
		actors[i] = registry.Actor{Name: name, Type: "agt", Principal: "agt-p", DefaultTTLHours: 8, MaxTTLHours: 24,
			Subjects: []string{name, registry.IAMSubject(name)}}
	}
	return registry.New(registry.DefaultSource, pkg, actors)
}

// BenchmarkDecideLarge measures the allow path over a 100,000-actor
// registry, cycling through actors spread over it: the actor lookup is a
// binary search of the snapshot, and nothing was built per actor.
func BenchmarkDecideLarge(b *testing.B) {
	p, err := Load(examplePolicy)
	if err != nil {
		b.Fatal(err)
	}
	snap := largeSnapshot(p.Name())
	actors := snap.Actors
	e, err := NewEvaluator(p, snap)
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
