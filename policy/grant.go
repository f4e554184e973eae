package policy

import (
	"fmt"
	"slices"

	"github.com/coulomb/flex-auth/registry"
)

// A Grant is what an allow gives: a certificate for the actor's Principal,
// valid TTLHours hours.
type Grant struct {
	Principal string
	TTLHours  int64
}

// The context members a grant is read from (CONTRACT section 6).
const (
	contextPrincipal = "principal"
	contextTTLHours  = "ttl_hours"
)

// A GrantError is an allow that the registry forbids: a policy package
// bug, which Evaluate turns into a deny with ReasonPolicyError. It names
// the rule that allowed and the registry rule it broke; it quotes no value
// of the request, which the client chose.
type GrantError struct {
	Rule string // the allowing rule's reason; "" when not known
	Line int    // the Markdown line of the rule; 0 for the default
	Msg  string // the registry rule broken
}

func (e *GrantError) Error() string {
	by := fmt.Sprintf("rule %q (line %d)", e.Rule, e.Line)
	switch {
	case e.Rule == "":
		by = "the policy"
	case e.Line == 0:
		by = fmt.Sprintf("the default (reason %q)", e.Rule)
	}
	return by + " allowed a request the registry forbids: " + e.Msg
}

// grant returns what allowing req grants from actor a (nil when the
// resource is not in the registry), or the registry rule the allow would
// break: the resource must be an actor; the subject one of its subjects;
// context.principal, when given, its principal; and context.ttl_hours,
// when given, an integer from 1 to its max_ttl_hours (else its
// default_ttl_hours is granted). It is the backstop behind every allow:
// whatever a package says, no grant the registry forbids is given.
func grant(req *Request, a *registry.Actor) (Grant, string) {
	if a == nil {
		return Grant{}, "the resource is not an actor in the registry"
	}
	if _, bound := slices.BinarySearch(a.Subjects, req.Subject); !bound { // sorted: see Evaluator.actors
		return Grant{}, fmt.Sprintf("the subject is not bound to actor %q", a.Name)
	}
	if p, given := req.Context[contextPrincipal]; given && p != a.Principal {
		return Grant{}, fmt.Sprintf("context.principal is not actor %q's principal %q", a.Name, a.Principal)
	}
	g := Grant{Principal: a.Principal, TTLHours: int64(a.DefaultTTLHours)}
	if v, given := req.Context[contextTTLHours]; given {
		ttl, isInt := v.(int64)
		if !isInt || ttl < 1 || ttl > int64(a.MaxTTLHours) {
			return Grant{}, fmt.Sprintf("context.ttl_hours is not an integer from 1 to actor %q's max_ttl_hours %d", a.Name, a.MaxTTLHours)
		}
		g.TTLHours = ttl
	}
	if g.TTLHours < 1 || g.TTLHours > int64(a.MaxTTLHours) { // a registry that is not valid
		return Grant{}, fmt.Sprintf("actor %q's default_ttl_hours %d is not from 1 to its max_ttl_hours %d", a.Name, a.DefaultTTLHours, a.MaxTTLHours)
	}
	return g, ""
}

// Grant returns what allowing req grants: the principal and lifetime of
// the certificate, read from the registry and req's context as grant
// describes. It returns a *GrantError when the registry forbids the
// grant, which Evaluate has already turned into a deny.
func (e *Evaluator) Grant(req *Request) (Grant, error) {
	var a *registry.Actor
	if v, ok := e.actor(req.Resource); ok && (req.ResourceType == "" || req.ResourceType == ActorType) {
		a = v.a
	}
	g, broken := grant(req, a)
	if broken != "" {
		return Grant{}, &GrantError{Msg: broken}
	}
	return g, nil
}
