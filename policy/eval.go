package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/coulomb/flex-auth/entities"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/registry"
)

// ErrPackageMismatch reports a registry snapshot meant for another policy
// package than the one it is being bound to.
var ErrPackageMismatch = errors.New("registry policy_package does not match the policy package")

// A mismatchError is ErrPackageMismatch with its own words.
type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return e.msg }
func (e *mismatchError) Unwrap() error { return ErrPackageMismatch }

// An Evaluator binds a package to its data: a registry model package to a
// registry snapshot, an AuthZEN model package to an entities document. It
// is immutable and safe for concurrent use.
type Evaluator struct {
	pkg  *Package
	snap *registry.Snapshot // registry model; nil otherwise
	// actors are the snapshot's actors sorted by name, each with its
	// subjects sorted: the snapshot's own slice, as every snapshot from
	// registry.Load, Parse or New is normalized, or else a sorted copy.
	actors []registry.Actor
	// extraSubjects indexes the subjects actors bind besides their own
	// two, for resource searches (extraSubjectIndex).
	extraSubjects map[string][]int32

	doc  *entities.Document // AuthZEN model; nil otherwise
	data ref.Val            // doc's entities as CEL's `data`
}

// NewEvaluator binds p, a registry model package, to the registry
// snapshot s. It refuses a snapshot
// whose PolicyPackage is not p.Name() (the error wraps ErrPackageMismatch),
// and a package that could cost more than CostLimit to decide a request
// with the actors of s (an *Error naming the rule). The snapshot must not
// change while the Evaluator is in use.
func NewEvaluator(p *Package, s *registry.Snapshot) (*Evaluator, error) {
	if p == nil || s == nil {
		return nil, errors.New("bind policy package: nil package or registry")
	}
	if p.model != ModelRegistry {
		return nil, redact.Errorf("bind policy package %q: its data is an entities document (%s), not a registry", redact.Value(p.name), redact.Value(p.data.File))
	}
	if s.PolicyPackage != p.name {
		return nil, redact.Errorf("bind policy package %q: %w: the registry is for %q", redact.Value(p.name), ErrPackageMismatch, redact.Value(s.PolicyPackage))
	}
	if err := checkCost(p, registryBounds(s)); err != nil {
		return nil, err
	}
	e := &Evaluator{pkg: p, snap: s, actors: s.Actors}
	if !normalized(s.Actors) {
		e.actors = slices.Clone(s.Actors)
		for i := range e.actors {
			e.actors[i].Subjects = slices.Sorted(slices.Values(e.actors[i].Subjects))
		}
		slices.SortStableFunc(e.actors, func(a, b registry.Actor) int { return strings.Compare(a.Name, b.Name) })
	}
	e.extraSubjects = extraSubjectIndex(e.actors)
	return e, nil
}

// NewEntitiesEvaluator binds p, an AuthZEN model package, to the entities
// document d. It refuses a document whose PolicyPackage is not p.Name()
// (the error wraps ErrPackageMismatch), and a package that could cost more
// than CostLimit to decide a request with the entities of d.
func NewEntitiesEvaluator(p *Package, d *entities.Document) (*Evaluator, error) {
	if p == nil || d == nil {
		return nil, errors.New("bind policy package: nil package or entities")
	}
	if p.model != ModelAuthZEN {
		return nil, redact.Errorf("bind policy package %q: it decides over a registry, not an entities document", redact.Value(p.name))
	}
	if d.PolicyPackage() != p.name {
		mismatch := redact.Error(&mismatchError{fmt.Sprintf("the entities document's policy_package is %q", d.PolicyPackage())},
			"the entities document's policy_package is "+redact.Hidden)
		return nil, redact.Errorf("bind policy package %q: %w", redact.Value(p.name), mismatch)
	}
	if err := checkCost(p, entitiesBounds(d)); err != nil {
		return nil, err
	}
	return &Evaluator{pkg: p, doc: d, data: types.DefaultTypeAdapter.NativeToValue(d.Data())}, nil
}

// normalized reports whether actors are sorted by name and each actor's
// subjects sorted.
func normalized(actors []registry.Actor) bool {
	for i := range actors {
		if i > 0 && actors[i-1].Name > actors[i].Name || !slices.IsSorted(actors[i].Subjects) {
			return false
		}
	}
	return true
}

// actor returns the actor named name as a CEL value. With duplicate names,
// which a validated snapshot cannot have, it is the first.
func (e *Evaluator) actor(name string) (actorValue, bool) {
	i, ok := slices.BinarySearchFunc(e.actors, name, func(a registry.Actor, n string) int { return strings.Compare(a.Name, n) })
	if !ok {
		return actorValue{}, false
	}
	return actorValue{&e.actors[i]}, true
}

// Package returns the bound policy package.
func (e *Evaluator) Package() *Package { return e.pkg }

// Registry returns the bound registry snapshot; nil for an AuthZEN model
// package.
func (e *Evaluator) Registry() *registry.Snapshot { return e.snap }

// Entities returns the bound entities document; nil for a registry model
// package.
func (e *Evaluator) Entities() *entities.Document { return e.doc }

// DataDigest returns the digest of the bound data: the registry's or the
// entities document's.
func (e *Evaluator) DataDigest() string {
	if e.doc != nil {
		return e.doc.Digest()
	}
	return e.snap.Digest
}

// Decide evaluates the rules in order: the first whose `when` is true
// decides; when none is, the package default does. An evaluation error
// denies with ReasonPolicyError, and so does an allow that the registry
// forbids (see Grant): whatever the package says, no request is allowed
// for an unknown actor, by a subject not bound to it, for another
// principal, or for a lifetime outside 1 to its max_ttl_hours. An empty
// Action is registry.DefaultAction. Decide never panics.
func (e *Evaluator) Decide(req *Request) Decision {
	d, _ := e.Evaluate(req)
	return d
}

// Evaluate is Decide that also says why a decision is a ReasonPolicyError
// deny, for logs: err is non-nil exactly then: an *EvalError naming the
// rule that failed to evaluate, a *GrantError naming the rule that allowed
// what the registry forbids (see Grant), or, for a nil request, another
// error.
func (e *Evaluator) Evaluate(req *Request) (d Decision, err error) {
	if req == nil {
		return Decision{Deny, ReasonPolicyError}, errors.New("nil request")
	}
	if e.pkg.model != ModelRegistry {
		return Decision{Deny, ReasonPolicyError}, errNotRegistry
	}
	a := activations.Get().(*activation)
	a.reset(e, req)
	defer func() {
		a.reset(nil, nil)
		activations.Put(a)
		if r := recover(); r != nil {
			d, err = Decision{Deny, ReasonPolicyError}, fmt.Errorf("internal error: %v", r)
		}
	}()
	d, line, err := e.decideIn(a)
	if err != nil || d.Effect != Allow {
		return d, err
	}
	var act *registry.Actor
	if a.hasActor {
		act = a.actor.a
	}
	if _, broken := grant(req, act); broken != "" {
		return Decision{Deny, ReasonPolicyError}, &GrantError{Rule: d.Reason, Line: line, Msg: broken}
	}
	return d, nil
}

// decideIn returns the decision of the first rule whose `when` is true for
// the request bound in a, and that rule's line, or the default and 0.
func (e *Evaluator) decideIn(a interpreter.Activation) (Decision, int, error) {
	rules := e.pkg.rules
	if chain := e.pkg.chain; chain != nil {
		// The fast path: all rules in one program. On an error, the rules
		// run one by one below, which names the failing rule.
		if out, _, err := chain.Eval(a); err == nil {
			if i, ok := out.(types.Int); ok {
				switch {
				case i < 0:
					return e.pkg.def, 0, nil
				case int(i) < len(rules):
					return rules[i].decision, rules[i].line, nil
				}
			}
		}
	}
	for _, r := range rules {
		out, _, err := r.prog.Eval(a)
		if err != nil {
			return Decision{Deny, ReasonPolicyError}, 0, &EvalError{Rule: r.decision.Reason, Line: r.line, Err: err}
		}
		switch out {
		case types.True:
			return r.decision, r.line, nil
		case types.False:
		default: // the type checker makes this unreachable; fail closed anyway
			return Decision{Deny, ReasonPolicyError}, 0, &EvalError{Rule: r.decision.Reason, Line: r.line,
				Err: fmt.Errorf("when gave %s, not a bool", out.Type().TypeName())}
		}
	}
	return e.pkg.def, 0, nil
}

// activations recycles the per-request variable bindings.
var activations = sync.Pool{New: func() any { return new(activation) }}

// defaultAction is registry.DefaultAction as a CEL value, shared by every request.
var defaultAction ref.Val = types.String(registry.DefaultAction)

// An activation binds the CEL variables of one request. Each is converted
// on first use and then shared by all rules. Converting the subject, the
// resource or a string member costs one small allocation: the price of not
// keeping a CEL copy of every registry entry (which, for 100,000 actors,
// was 50 MB).
type activation struct {
	req      *Request
	actor    actorValue
	hasActor bool

	subject, action, resource ref.Val
	context                   contextValue
	contextSet                bool
}

func (a *activation) reset(e *Evaluator, req *Request) {
	a.req, a.actor, a.hasActor = req, actorValue{}, false
	a.subject, a.action, a.resource = nil, nil, nil
	a.context.reset(nil)
	a.contextSet = false
	if e != nil && (req.ResourceType == "" || req.ResourceType == ActorType) {
		a.actor, a.hasActor = e.actor(req.Resource)
	}
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varSubject:
		if a.subject == nil {
			a.subject = types.String(a.req.Subject)
		}
		return a.subject, true
	case varAction:
		if a.action == nil {
			if act := a.req.Action; act == "" || act == registry.DefaultAction {
				a.action = defaultAction
			} else {
				a.action = types.String(act)
			}
		}
		return a.action, true
	case varResource:
		if a.resource == nil {
			a.resource = types.String(a.req.Resource)
		}
		return a.resource, true
	case varContext:
		if !a.contextSet {
			a.context.reset(a.req.Context)
			a.contextSet = true
		}
		return &a.context, true
	case varActor:
		if !a.hasActor {
			return types.NullValue, true
		}
		return a.actor, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }
