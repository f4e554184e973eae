package policy

import (
	"reflect"
	"slices"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/coulomb/flex-auth/registry"
)

// An actorValue is one registry entry as CEL sees it: a map(string, dyn)
// with the snapshot's member names, read from the registry.Actor itself.
// Binding a registry builds nothing per actor, so a 100,000-actor registry
// costs its snapshot and no more; a request converts only the members its
// rules read (a string costs one small allocation, an integer below 256
// none). The value is a single pointer, so it becomes a ref.Val without
// allocating. Member lookups, the operations policies make, are served
// here; everything else (equality, iteration, conversion) is handed to
// cel-go's own map over the same members, so the semantics are cel-go's.
type actorValue struct{ a *registry.Actor }

// The member names of an actor, as in the snapshot.
const (
	memberName            = "name"
	memberType            = "type"
	memberPrincipal       = "principal"
	memberDefaultTTLHours = "default_ttl_hours"
	memberMaxTTLHours     = "max_ttl_hours"
	memberSubjects        = "subjects"
)

// actorMembers are the members of the `actor` variable, as the snapshot
// names them (CONTRACT section 2).
var actorMembers = []string{memberName, memberType, memberPrincipal, memberDefaultTTLHours, memberMaxTTLHours, memberSubjects}

func (v actorValue) member(key string) (ref.Val, bool) {
	a := v.a
	switch key {
	case memberName:
		return types.String(a.Name), true
	case memberType:
		return types.String(a.Type), true
	case memberPrincipal:
		return types.String(a.Principal), true
	case memberDefaultTTLHours:
		return types.Int(a.DefaultTTLHours), true
	case memberMaxTTLHours:
		return types.Int(a.MaxTTLHours), true
	case memberSubjects:
		return subjectsValue(v), true
	}
	return nil, false
}

// std returns cel-go's map over the same members, for the rare operations.
func (v actorValue) std() traits.Mapper {
	a := v.a
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{
		memberName:            a.Name,
		memberType:            a.Type,
		memberPrincipal:       a.Principal,
		memberDefaultTTLHours: int64(a.DefaultTTLHours),
		memberMaxTTLHours:     int64(a.MaxTTLHours),
		memberSubjects:        a.Subjects,
	})
}

// FindStringKey is the fast path cel-go's interpreter takes for
// `actor.name`.
func (v actorValue) FindStringKey(key string) (any, bool) {
	m, ok := v.member(key)
	if !ok {
		return nil, false
	}
	return m, true
}

// Find implements traits.Mapper.
func (v actorValue) Find(key ref.Val) (ref.Val, bool) {
	if s, ok := key.(types.String); ok {
		return v.member(string(s))
	}
	return v.std().Find(key)
}

// Get implements traits.Indexer.
func (v actorValue) Get(key ref.Val) ref.Val {
	if s, ok := key.(types.String); ok {
		if m, found := v.member(string(s)); found {
			return m
		}
	}
	return v.std().Get(key)
}

// Contains implements traits.Container: `'principal' in actor`.
func (v actorValue) Contains(key ref.Val) ref.Val {
	if s, ok := key.(types.String); ok {
		_, found := v.member(string(s))
		return types.Bool(found)
	}
	return v.std().Contains(key)
}

// Size implements traits.Sizer.
func (v actorValue) Size() ref.Val { return types.Int(len(actorMembers)) }

// IsZeroValue reports whether the map is empty: never.
func (v actorValue) IsZeroValue() bool { return false }

// Iterator implements traits.Iterable.
func (v actorValue) Iterator() traits.Iterator { return v.std().Iterator() }

// ConvertToNative implements ref.Val.
func (v actorValue) ConvertToNative(t reflect.Type) (any, error) {
	return v.std().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (v actorValue) ConvertToType(t ref.Type) ref.Val {
	if t == types.MapType {
		return v
	}
	return v.std().ConvertToType(t)
}

// Equal implements ref.Val.
func (v actorValue) Equal(other ref.Val) ref.Val { return v.std().Equal(other) }

// Type implements ref.Val.
func (v actorValue) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (v actorValue) Value() any { return v.std().Value() }

var _ traits.Mapper = actorValue{}

// A subjectsValue is an actor's subjects as a CEL list(string). `in`, the
// operation policies make, is a binary search of the snapshot's sorted
// subjects; everything else is cel-go's own list over the same strings.
type subjectsValue struct{ a *registry.Actor }

func (v subjectsValue) std() traits.Lister {
	return types.NewStringList(types.DefaultTypeAdapter, v.a.Subjects)
}

// Contains implements traits.Container: `subject in actor.subjects`.
func (v subjectsValue) Contains(elem ref.Val) ref.Val {
	if s, ok := elem.(types.String); ok {
		_, found := slices.BinarySearch(v.a.Subjects, string(s))
		return types.Bool(found)
	}
	return v.std().Contains(elem)
}

// Add implements traits.Adder.
func (v subjectsValue) Add(other ref.Val) ref.Val { return v.std().Add(other) }

// Get implements traits.Indexer.
func (v subjectsValue) Get(index ref.Val) ref.Val { return v.std().Get(index) }

// Size implements traits.Sizer.
func (v subjectsValue) Size() ref.Val { return types.Int(len(v.a.Subjects)) }

// Iterator implements traits.Iterable.
func (v subjectsValue) Iterator() traits.Iterator { return v.std().Iterator() }

// ConvertToNative implements ref.Val.
func (v subjectsValue) ConvertToNative(t reflect.Type) (any, error) {
	return v.std().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (v subjectsValue) ConvertToType(t ref.Type) ref.Val {
	if t == types.ListType {
		return v
	}
	return v.std().ConvertToType(t)
}

// Equal implements ref.Val.
func (v subjectsValue) Equal(other ref.Val) ref.Val { return v.std().Equal(other) }

// Type implements ref.Val.
func (v subjectsValue) Type() ref.Type { return types.ListType }

// Value implements ref.Val.
func (v subjectsValue) Value() any { return v.a.Subjects }

var _ traits.Lister = subjectsValue{}
