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

	"github.com/coulomb/flex-auth/registry"
)

// An Entity is an AuthZEN subject or resource: a Type, an ID unique within
// its type, and the Properties the request gave (nil for none). Properties
// hold JSON-decoded values, as Request.Context does.
type Entity struct {
	Type, ID   string
	Properties map[string]any
}

// An Action is an AuthZEN action: a Name and the Properties the request
// gave.
type Action struct {
	Name       string
	Properties map[string]any
}

// An Access is one AuthZEN access evaluation: may Subject perform Action on
// Resource, in Context?
type Access struct {
	Subject  Entity
	Action   Action
	Resource Entity
	Context  map[string]any
}

// Request returns the registry model's request for a: the subject's id,
// the action's name and the resource's id, with its type, and the context.
// A registry model package decides an AuthZEN request as it decides this
// request on POST /v1/check: the entities' properties are not read.
func (a *Access) Request() Request {
	return Request{Subject: a.Subject.ID, Action: a.Action.Name, Resource: a.Resource.ID, ResourceType: a.Resource.Type, Context: a.Context}
}

// The members of the AuthZEN model's entities, as rules read them and as
// a test request in AuthZEN's form writes them (type and id, and name,
// being required).
var (
	entityMembers = []string{"type", "id", "properties"}
	actionMembers = []string{"name", "properties"}
)

// errNotRegistry is the error of a /v1/check request to an AuthZEN model
// package.
var (
	errNotRegistry = errors.New("the package decides AuthZEN requests over an entities document, not /v1/check requests")
	errNilAccess   = errors.New("nil request")
)

// Access decides an AuthZEN request. A registry model package decides
// a.Request(), with the backstop Evaluate applies; an AuthZEN model
// package evaluates its rules over the entities, each entity's properties
// being those the entities document gives it with the request's laid over
// them (the request's value wins for a key both have). It never panics;
// err is non-nil exactly when the decision is a ReasonPolicyError deny, as
// for Evaluate.
func (e *Evaluator) Access(a *Access) (d Decision, err error) {
	if a == nil {
		return Decision{Deny, ReasonPolicyError}, errNilAccess
	}
	if e.pkg.model != ModelAuthZEN {
		req := a.Request()
		return e.Evaluate(&req)
	}
	act := accessActivations.Get().(*accessActivation)
	act.reset(e, a)
	defer func() {
		act.reset(nil, nil)
		accessActivations.Put(act)
		if r := recover(); r != nil {
			d, err = Decision{Deny, ReasonPolicyError}, fmt.Errorf("internal error: %v", r)
		}
	}()
	d, _, err = e.decideIn(act)
	return d, err
}

// accessActivations recycles the variable bindings of AuthZEN requests.
var accessActivations = sync.Pool{New: func() any { return new(accessActivation) }}

// An accessActivation binds the CEL variables of one AuthZEN model
// request, each converted on first use.
type accessActivation struct {
	e *Evaluator
	a *Access

	subject, action, resource ref.Val
	context                   contextValue
	contextSet                bool
}

func (x *accessActivation) reset(e *Evaluator, a *Access) {
	*x = accessActivation{e: e, a: a}
	x.context.reset(nil)
}

// ResolveName implements interpreter.Activation.
func (x *accessActivation) ResolveName(name string) (any, bool) {
	switch name {
	case varSubject:
		if x.subject == nil {
			x.subject = x.e.entityValue(&x.a.Subject)
		}
		return x.subject, true
	case varResource:
		if x.resource == nil {
			x.resource = x.e.entityValue(&x.a.Resource)
		}
		return x.resource, true
	case varAction:
		if x.action == nil {
			x.action = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{
				"name":       x.a.Action.Name,
				"properties": orEmpty(x.a.Action.Properties),
			})
		}
		return x.action, true
	case varContext:
		if !x.contextSet {
			x.context.reset(x.a.Context)
			x.contextSet = true
		}
		return &x.context, true
	case varData:
		return x.e.data, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (x *accessActivation) Parent() interpreter.Activation { return nil }

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return emptyMap
	}
	return m
}

// entityValue returns ent as CEL sees it: its type, id and properties, the
// entities document's for it with ent's laid over them.
func (e *Evaluator) entityValue(ent *Entity) ref.Val {
	props := orEmpty(ent.Properties)
	if stored, ok := e.doc.Properties(ent.Type, ent.ID); ok && len(stored) > 0 {
		if len(props) == 0 {
			props = stored
		} else {
			merged := make(map[string]any, len(stored)+len(props))
			for k, v := range stored {
				merged[k] = v
			}
			for k, v := range props {
				merged[k] = v
			}
			props = merged
		}
	}
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{
		"type":       ent.Type,
		"id":         ent.ID,
		"properties": props,
	})
}

// A Search is what an AuthZEN search looks for.
type Search int

// The three searches.
const (
	SearchSubject Search = iota
	SearchResource
	SearchAction
)

// Candidates returns what a search of kind k for q may admit, sorted: the
// ids of the subjects (k SearchSubject, of type q.Subject.Type) or of the
// resources (SearchResource, of type q.Resource.Type), or the names of
// the actions (SearchAction). Each candidate, put in q's place, is then
// decided as any request: the search admits those allowed.
//
// An AuthZEN model package's candidates are the entities document's: its
// entities of the type searched, or its actions. A registry model
// package's are the only ones its backstop lets it allow: the subjects
// bound to the actor q.Resource names, the actors q.Subject.ID is bound to
// (for the resource type ActorType), and the action ssh.sign. The caller
// must not modify the slice.
func (e *Evaluator) Candidates(k Search, q *Access) []string {
	if e.pkg.model == ModelAuthZEN {
		switch k {
		case SearchSubject:
			return e.doc.IDs(q.Subject.Type)
		case SearchResource:
			return e.doc.IDs(q.Resource.Type)
		default:
			return e.doc.Actions()
		}
	}
	switch k {
	case SearchSubject:
		if q.Resource.Type != ActorType {
			return nil
		}
		if a, ok := e.actor(q.Resource.ID); ok {
			return a.a.Subjects
		}
		return nil
	case SearchResource:
		if q.Resource.Type != ActorType {
			return nil
		}
		return e.boundActors(q.Subject.ID)
	default:
		return defaultActions
	}
}

var defaultActions = []string{registry.DefaultAction}

// boundActors returns the names of the actors sub is bound to, sorted:
// the actor named sub, the actor named by sub's iam: form, and those that
// bind it as an extra subject.
func (e *Evaluator) boundActors(sub string) []string {
	var names []string
	if a, ok := e.actor(sub); ok {
		names = append(names, a.a.Name)
	}
	if name, ok := strings.CutPrefix(sub, "iam:"); ok {
		if a, ok := e.actor(name); ok {
			names = append(names, a.a.Name)
		}
	}
	for _, i := range e.extraSubjects[sub] {
		names = append(names, e.actors[i].Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// extraSubjectIndex maps every subject an actor binds besides its name and
// iam: form to the actors that bind it: what a resource search needs that
// a binary search by name cannot find.
func extraSubjectIndex(actors []registry.Actor) map[string][]int32 {
	idx := map[string][]int32{}
	for i := range actors {
		a := &actors[i]
		for _, sub := range a.Subjects {
			if sub != a.Name && sub != registry.IAMSubject(a.Name) {
				idx[sub] = append(idx[sub], int32(i))
			}
		}
	}
	return idx
}
