// Package yamljson reads YAML values people write (a policy package's
// tests, an entities document) as the values the same JSON would decode
// to: int64, float64, string, bool, nil, []any and map[string]any. What
// JSON cannot say (a key that is not a string, a duplicate key, NaN, an
// integer beyond 64 bits) is reported, with the node it is at, rather than
// guessed. Messages quote the file's values as redact.Value and
// redact.Text, so that their redacted form leaves them out.
package yamljson

import (
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/coulomb/flex-auth/internal/redact"
)

// A Report receives one problem at node n, as a format and its arguments
// for redact.Sprintf; Value keeps going, so that one read reports every
// problem.
type Report func(n *yaml.Node, format string, args ...any)

// MaxSafeInteger is the largest integer SafeValue accepts: the largest
// that every JSON reader holds exactly (I-JSON, RFC 7493 2.2), numbers
// being doubles to some.
const MaxSafeInteger = 1<<53 - 1

// Value converts the YAML value n. what names it in messages
// ("request: context"); nested values are named what.key and what[i], and
// in the redacted form what.<redacted> and what[i]. It reports false when
// a problem was reported.
func Value(n *yaml.Node, what redact.Text, report Report) (any, bool) {
	return value(n, what, false, report)
}

// SafeValue is Value that also refuses an integer beyond ±MaxSafeInteger,
// for a document whose every value each JSON reader must read alike.
func SafeValue(n *yaml.Node, what redact.Text, report Report) (any, bool) {
	return value(n, what, true, report)
}

func value(n *yaml.Node, what redact.Text, safe bool, report Report) (any, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				report(k, "%s: keys must be strings, got %s (quote the key)", what, Describe(k))
				ok = false
				continue
			}
			if _, dup := m[k.Value]; dup {
				report(k, "%s: duplicate key %q", what, redact.Value(k.Value))
				ok = false
				continue
			}
			x, vok := value(v, redact.Pair(what.String()+"."+k.Value, what.Redacted()+"."+redact.Hidden), safe, report)
			m[k.Value] = x
			ok = ok && vok
		}
		return m, ok
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		ok := true
		for i, e := range n.Content {
			x, eok := value(e, redact.Pair(fmt.Sprintf("%s[%d]", what, i), fmt.Sprintf("%s[%d]", what.Redacted(), i)), safe, report)
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
			if err := n.Decode(&i); err != nil {
				report(n, "%s: integer %s does not fit in 64 bits", what, redact.Value(n.Value))
				return nil, false
			}
			if safe && (i > MaxSafeInteger || i < -MaxSafeInteger) {
				report(n, "%s: integer %s is beyond ±%d, which not every JSON reader holds exactly: write it as a string", what, redact.Value(n.Value), int64(MaxSafeInteger))
				return nil, false
			}
			return i, true
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					report(n, "%s: %s is not a JSON number", what, redact.Value(n.Value))
					return nil, false
				}
				return f, true
			}
		}
	}
	report(n, "%s: unsupported value %s", what, Describe(n))
	return nil, false
}

// Describe says what kind of YAML value n is, and which, for messages;
// its redacted form says only what kind.
func Describe(n *yaml.Node) redact.Text {
	switch n.Kind {
	case yaml.MappingNode:
		return redact.Pair("a mapping", "a mapping")
	case yaml.SequenceNode:
		return redact.Pair("a list", "a list")
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return redact.Pair(strconv.Quote(n.Value), "a string")
		case "!!null":
			return redact.Pair("null", "null")
		case "!!int":
			return redact.Pair("the integer "+n.Value, "an integer")
		case "!!float":
			return redact.Pair("the number "+n.Value, "a number")
		case "!!bool":
			return redact.Pair("the boolean "+n.Value, "a boolean")
		}
		return redact.Pair(fmt.Sprintf("a %s value", n.Tag), "a value with a tag")
	}
	return redact.Pair("an unsupported YAML value", "an unsupported YAML value")
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
