package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/coulomb/flex-auth/registry"
)

// checkBody is a POST /v1/check body.
type checkBody struct {
	Subject  string         `json:"subject"`
	Action   string         `json:"action"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`
}

// A mixCase is one request of the mix and the decision it must get.
type mixCase struct {
	body           checkBody
	effect, reason string
}

// mixCases returns the request mix for a registry: for each actor (all of
// them, or maxActors spread evenly over the registry) five requests, two
// allowed and three denied for different reasons, so that every rule of
// the ops-warden policy is evaluated:
//
//   - allow: the actor's own name as subject, its principal, its default TTL
//   - allow: its IAM subject, its maximum TTL
//   - deny ttl_out_of_bounds: a TTL one above its maximum
//   - deny subject_not_bound: another actor's IAM subject
//   - deny unknown_actor_resource: an actor that is not in the registry
//
// The order is shuffled with a fixed seed, so that consecutive requests on
// a connection are neither all allows nor all on one actor, and two runs
// send the same requests.
func mixCases(snap *registry.Snapshot, maxActors int) ([]mixCase, error) {
	actors := snap.Actors
	if len(actors) < 2 {
		return nil, fmt.Errorf("registry has %d actors; the mix needs at least 2", len(actors))
	}
	n := len(actors)
	if maxActors > 0 && n > maxActors {
		n = maxActors
	}
	var cases []mixCase
	for i := range n {
		a := &actors[i*len(actors)/n]
		other := &actors[(i*len(actors)/n+1)%len(actors)]
		cases = append(cases,
			mixCase{checkBody{a.Name, registry.DefaultAction, a.Name, map[string]any{"principal": a.Principal, "ttl_hours": a.DefaultTTLHours}}, "allow", "signing_policy_matched"},
			mixCase{checkBody{registry.IAMSubject(a.Name), registry.DefaultAction, a.Name, map[string]any{"ttl_hours": a.MaxTTLHours}}, "allow", "signing_policy_matched"},
			mixCase{checkBody{registry.IAMSubject(a.Name), registry.DefaultAction, a.Name, map[string]any{"ttl_hours": a.MaxTTLHours + 1}}, "deny", "ttl_out_of_bounds"},
			mixCase{checkBody{registry.IAMSubject(other.Name), registry.DefaultAction, a.Name, map[string]any{"ttl_hours": a.DefaultTTLHours}}, "deny", "subject_not_bound"},
			mixCase{checkBody{a.Name, registry.DefaultAction, fmt.Sprintf("agt-bench-unknown-%d", i), map[string]any{"ttl_hours": 1}}, "deny", "unknown_actor_resource"},
		)
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	return cases, nil
}

// buildMix returns the request mix of mixCases as /v1/check requests.
func buildMix(snap *registry.Snapshot, addr string, maxActors int) ([]request, error) {
	cases, err := mixCases(snap, maxActors)
	if err != nil {
		return nil, err
	}
	reqs := make([]request, 0, len(cases))
	for _, c := range cases {
		data, err := json.Marshal(c.body)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, request{
			wire:   encodeRequest("POST", addr, "/v1/check", "application/json", data),
			effect: c.effect, reason: c.reason,
		})
	}
	return reqs, nil
}

// largeSnapshot returns a registry of n generated actors, each type in
// turn, named so that they sort in generation order, with an extra
// subject on every tenth actor. extra names an additional actor (for a
// reload that changes the digest without changing any decision of the
// mix), or is empty.
func largeSnapshot(n int, policyPackage, extra string) *registry.Snapshot {
	types := []string{"adm", "agt", "atm"}
	actors := make([]registry.Actor, 0, n+1)
	for i := range n {
		typ := types[i%len(types)]
		name := fmt.Sprintf("%s-bench-%06d", typ, i)
		ttl := 1 + i%24
		a := registry.Actor{
			Name:            name,
			Type:            typ,
			Principal:       fmt.Sprintf("%s-p%d", typ, i%50),
			DefaultTTLHours: ttl,
			MaxTTLHours:     ttl + i%3,
			Subjects:        []string{name, registry.IAMSubject(name)},
		}
		if i%10 == 0 {
			a.Subjects = append(a.Subjects, fmt.Sprintf("iam:role/bench-%d", i))
		}
		actors = append(actors, a)
	}
	if extra != "" {
		actors = append(actors, registry.Actor{
			Name: extra, Type: registry.TypeOf(extra), Principal: "bench-reload",
			DefaultTTLHours: 1, MaxTTLHours: 1,
			Subjects: []string{extra, registry.IAMSubject(extra)},
		})
	}
	return registry.New(registry.DefaultSource, policyPackage, actors)
}
