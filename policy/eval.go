package policy

import (
	"errors"
	"fmt"
	"sync"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
	"github.com/coulomb/flex-auth/registry"
)

// ErrPackageMismatch reports a registry snapshot meant for another policy
// package than the one it is being bound to.
var ErrPackageMismatch = errors.New("registry policy_package does not match the policy package")

// An Evaluator binds a package to a registry snapshot. It is immutable and
// safe for concurrent use.
type Evaluator struct {
	pkg    *Package
	snap   *registry.Snapshot
	actors map[string]*actorValue
}

// An actorValue is one registry entry as CEL sees it, built once per
// snapshot so that a request looks its actor up and converts nothing.
type actorValue struct {
	val          ref.Val            // map with the snapshot's member names
	name         ref.Val            // the name as a CEL string
	principal    string             // the principal, and
	principalVal ref.Val            // as a CEL string
	subjects     map[string]ref.Val // each subject as a CEL string
}

// NewEvaluator binds p to the registry snapshot s. It refuses a snapshot
// whose PolicyPackage is not p.Name(); the error wraps ErrPackageMismatch.
func NewEvaluator(p *Package, s *registry.Snapshot) (*Evaluator, error) {
	if p == nil || s == nil {
		return nil, errors.New("bind policy package: nil package or registry")
	}
	if s.PolicyPackage != p.name {
		return nil, fmt.Errorf("bind policy package %q: %w: the registry is for %q", p.name, ErrPackageMismatch, s.PolicyPackage)
	}
	e := &Evaluator{pkg: p, snap: s, actors: make(map[string]*actorValue, len(s.Actors))}
	for i := range s.Actors {
		a := &s.Actors[i]
		subjects := make(map[string]ref.Val, len(a.Subjects))
		for _, sub := range a.Subjects {
			subjects[sub] = types.String(sub)
		}
		name, principal := types.String(a.Name), types.String(a.Principal)
		e.actors[a.Name] = &actorValue{
			name:         name,
			principal:    a.Principal,
			principalVal: principal,
			subjects:     subjects,
			val: types.NewMap(types.DefaultTypeAdapter, map[string]ref.Val{
				"name":              name,
				"type":              types.String(a.Type),
				"principal":         principal,
				"default_ttl_hours": types.Int(a.DefaultTTLHours),
				"max_ttl_hours":     types.Int(a.MaxTTLHours),
				"subjects":          types.NewStringList(types.DefaultTypeAdapter, a.Subjects),
			}),
		}
	}
	return e, nil
}

// Package returns the bound policy package.
func (e *Evaluator) Package() *Package { return e.pkg }

// Registry returns the bound registry snapshot.
func (e *Evaluator) Registry() *registry.Snapshot { return e.snap }

// Decide evaluates the rules in order: the first whose `when` is true
// decides; when none is, the package default does. An evaluation error
// denies with ReasonPolicyError. An empty Action is DefaultAction. Decide
// never panics.
func (e *Evaluator) Decide(req *Request) Decision {
	d, _ := e.Evaluate(req)
	return d
}

// Evaluate is Decide that also says why a decision is a ReasonPolicyError
// deny, for logs: err is non-nil exactly then, an *EvalError naming the
// failing rule unless the request was nil.
func (e *Evaluator) Evaluate(req *Request) (d Decision, err error) {
	if req == nil {
		return Decision{Deny, ReasonPolicyError}, errors.New("nil request")
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
	if chain := e.pkg.chain; chain != nil {
		// The fast path: all rules in one program. On an error, the rules
		// run one by one below, which names the failing rule.
		if out, _, err := chain.Eval(a); err == nil {
			if i, ok := out.(types.Int); ok {
				switch {
				case i < 0:
					return e.pkg.def, nil
				case int(i) < len(e.pkg.rules):
					return e.pkg.rules[i].decision, nil
				}
			}
		}
	}
	for _, r := range e.pkg.rules {
		out, _, err := r.prog.Eval(a)
		if err != nil {
			return Decision{Deny, ReasonPolicyError}, &EvalError{Rule: r.decision.Reason, Line: r.line, Err: err}
		}
		switch out {
		case types.True:
			return r.decision, nil
		case types.False:
		default: // the type checker makes this unreachable; fail closed anyway
			return Decision{Deny, ReasonPolicyError}, &EvalError{Rule: r.decision.Reason, Line: r.line,
				Err: fmt.Errorf("when gave %s, not a bool", out.Type().TypeName())}
		}
	}
	return e.pkg.def, nil
}

// activations recycles the per-request variable bindings.
var activations = sync.Pool{New: func() any { return new(activation) }}

// defaultAction is DefaultAction as a CEL value, shared by every request.
var defaultAction ref.Val = types.String(DefaultAction)

// An activation binds the CEL variables of one request. Each is converted
// on first use and then shared by all rules; a request's subject and
// resource that name registry values reuse the values built by
// NewEvaluator, so the common paths convert nothing.
type activation struct {
	req   *Request
	actor *actorValue

	subject, action, resource ref.Val
	context                   contextValue
	contextSet                bool
}

func (a *activation) reset(e *Evaluator, req *Request) {
	a.req, a.actor = req, nil
	a.subject, a.action, a.resource = nil, nil, nil
	a.context.reset(nil, nil)
	a.contextSet = false
	if e != nil {
		a.actor = e.actors[req.Resource]
	}
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varSubject:
		if a.subject == nil {
			if v, ok := a.actor.subject(a.req.Subject); ok {
				a.subject = v
			} else {
				a.subject = types.String(a.req.Subject)
			}
		}
		return a.subject, true
	case varAction:
		if a.action == nil {
			if act := a.req.Action; act == "" || act == DefaultAction {
				a.action = defaultAction
			} else {
				a.action = types.String(act)
			}
		}
		return a.action, true
	case varResource:
		if a.resource == nil {
			if a.actor != nil {
				a.resource = a.actor.name
			} else {
				a.resource = types.String(a.req.Resource)
			}
		}
		return a.resource, true
	case varContext:
		if !a.contextSet {
			a.context.reset(a.req.Context, a.actor)
			a.contextSet = true
		}
		return &a.context, true
	case varActor:
		if a.actor == nil {
			return types.NullValue, true
		}
		return a.actor.val, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// subject returns the actor's subject s as a CEL value, if it is one.
func (v *actorValue) subject(s string) (ref.Val, bool) {
	if v == nil {
		return nil, false
	}
	x, ok := v.subjects[s]
	return x, ok
}
