package policy

import (
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// contextCacheSize is how many context members one request keeps converted;
// policies read a handful.
const contextCacheSize = 4

// A contextValue is a request's context as a CEL map(string, dyn). It lives
// inside a pooled activation, so binding it allocates nothing, and it keeps
// the members a request reads converted, so that three rules reading
// ttl_hours convert it once. String-keyed lookups, the ones policies make,
// are served here; everything else (equality, iteration, conversion,
// lookups by other key types) is handed to cel-go's own map over the same
// Go map, so the semantics are cel-go's.
type contextValue struct {
	m     map[string]any
	n     int
	cache [contextCacheSize]struct {
		key string
		val ref.Val
	}
}

var emptyMap = map[string]any{}

func (c *contextValue) reset(m map[string]any) {
	if m == nil {
		m = emptyMap
	}
	*c = contextValue{m: m}
}

// std returns cel-go's map over the same members, for the rare operations.
func (c *contextValue) std() traits.Mapper {
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, c.m)
}

func (c *contextValue) lookup(key string) (ref.Val, bool) {
	for i := 0; i < c.n; i++ {
		if c.cache[i].key == key {
			return c.cache[i].val, true
		}
	}
	raw, ok := c.m[key]
	if !ok {
		return nil, false
	}
	v := types.DefaultTypeAdapter.NativeToValue(raw)
	if c.n < len(c.cache) {
		c.cache[c.n].key, c.cache[c.n].val = key, v
		c.n++
	}
	return v, true
}

// FindStringKey is the fast path cel-go's interpreter takes for
// `context.name`.
func (c *contextValue) FindStringKey(key string) (any, bool) {
	v, ok := c.lookup(key)
	if !ok {
		return nil, false
	}
	return v, true
}

// Find implements traits.Mapper.
func (c *contextValue) Find(key ref.Val) (ref.Val, bool) {
	if s, ok := key.(types.String); ok {
		return c.lookup(string(s))
	}
	return c.std().Find(key)
}

// Get implements traits.Indexer.
func (c *contextValue) Get(key ref.Val) ref.Val {
	if s, ok := key.(types.String); ok {
		if v, found := c.lookup(string(s)); found {
			return v
		}
	}
	return c.std().Get(key)
}

// Contains implements traits.Container: `'ttl_hours' in context`.
func (c *contextValue) Contains(key ref.Val) ref.Val {
	if s, ok := key.(types.String); ok {
		_, found := c.m[string(s)]
		return types.Bool(found)
	}
	return c.std().Contains(key)
}

// Size implements traits.Sizer.
func (c *contextValue) Size() ref.Val { return types.Int(len(c.m)) }

// IsZeroValue reports whether the context is empty.
func (c *contextValue) IsZeroValue() bool { return len(c.m) == 0 }

// Iterator implements traits.Iterable.
func (c *contextValue) Iterator() traits.Iterator { return c.std().Iterator() }

// ConvertToNative implements ref.Val.
func (c *contextValue) ConvertToNative(t reflect.Type) (any, error) {
	return c.std().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (c *contextValue) ConvertToType(t ref.Type) ref.Val {
	if t == types.MapType {
		return c
	}
	return c.std().ConvertToType(t)
}

// Equal implements ref.Val.
func (c *contextValue) Equal(other ref.Val) ref.Val { return c.std().Equal(other) }

// Type implements ref.Val.
func (c *contextValue) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (c *contextValue) Value() any { return c.m }

var _ traits.Mapper = (*contextValue)(nil)
