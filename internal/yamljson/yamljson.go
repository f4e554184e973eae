// Package yamljson reads YAML values people write (a policy package's
// tests, an entities document) as the values the same JSON would decode
// to: int64, float64, string, bool, nil, []any and map[string]any. What
// JSON cannot say (a key that is not a string, a duplicate key, NaN, an
// integer beyond 64 bits) is reported, with the node it is at, rather than
// guessed.
package yamljson

import (
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// A Report receives one problem at node n; Value keeps going, so that one
// read reports every problem.
type Report func(n *yaml.Node, msg string)

// Value converts the YAML value n. what names it in messages
// ("request: context"); nested values are named what.key and what[i].
// It reports false when a problem was reported.
func Value(n *yaml.Node, what string, report Report) (any, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				report(k, fmt.Sprintf("%s: keys must be strings, got %s (quote the key)", what, Describe(k)))
				ok = false
				continue
			}
			if _, dup := m[k.Value]; dup {
				report(k, fmt.Sprintf("%s: duplicate key %q", what, k.Value))
				ok = false
				continue
			}
			x, vok := Value(v, what+"."+k.Value, report)
			m[k.Value] = x
			ok = ok && vok
		}
		return m, ok
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		ok := true
		for i, e := range n.Content {
			x, eok := Value(e, fmt.Sprintf("%s[%d]", what, i), report)
			l[i] = x
			ok = ok && eok
		}
		return l, ok
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, true
		case "!!str", "!!timestamp": // JSON has no timestamps: a string
			return n.Value, true
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b, true
			}
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, true
			}
			report(n, fmt.Sprintf("%s: integer %s does not fit in 64 bits", what, n.Value))
			return nil, false
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					report(n, fmt.Sprintf("%s: %s is not a JSON number", what, n.Value))
					return nil, false
				}
				return f, true
			}
		}
	}
	report(n, fmt.Sprintf("%s: unsupported value %s", what, Describe(n)))
	return nil, false
}

// Describe says what kind of YAML value n is, for messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!null":
			return "null"
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		}
		return fmt.Sprintf("a %s value", n.Tag)
	}
	return "an unsupported YAML value"
}

// FindAlias returns the first node under n that is or defines an alias,
// or nil. Documents people read refuse anchors and aliases: they make a
// document's size unbounded, and its meaning hard to see.
func FindAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return n
	}
	for _, c := range n.Content {
		if a := FindAlias(c); a != nil {
			return a
		}
	}
	return nil
}
