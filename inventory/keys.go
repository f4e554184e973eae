package inventory

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

const tagFloat = "!!float"

// Keys are compared as YAML values, not as text (YAML 1.2.2, 3.2.1.3: two
// scalars are equal when their tags and canonical forms are): "true" and
// "True" are the same boolean key, 0x1 and 1 the same integer, while 1 and
// "1" are an integer and a string, two keys. Plain scalars are resolved by
// YAML 1.2's core schema (10.3.2) rather than by yaml.v3, which also knows
// YAML 1.1 forms (1_000, 0b1, timestamps).

// scalarValue returns the tag of scalar n and its canonical form.
func scalarValue(n *yaml.Node) (tag, canon string) {
	tag = tagOf(n)
	return tag, canonical(tag, n.Value)
}

// tagOf returns the tag of scalar n: the one it is given, else !!str when
// it is quoted or a block scalar, else what the core schema resolves.
// Values are read by it too, not by yaml.v3's tags, so that a TTL of
// 1_000 is the string YAML 1.2 says it is.
func tagOf(n *yaml.Node) string {
	switch {
	case n.Style&yaml.TaggedStyle != 0:
		return n.Tag
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return tagStr
	}
	return coreTag(n.Value)
}

// isText reports whether key k (a resolved scalar) is text: not a null,
// boolean, integer or float. Only text keys can be the inventory's keys
// and actor names.
func isText(k *yaml.Node) bool {
	switch tagOf(k) {
	case tagNull, tagBool, tagInt, tagFloat:
		return false
	}
	return true
}

// coreTag resolves a plain scalar by the core schema.
func coreTag(s string) string {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return tagNull
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return tagBool
	case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return tagFloat
	}
	switch c := s[0]; {
	case '0' <= c && c <= '9', c == '+', c == '-', c == '.':
	default:
		return tagStr
	}
	if _, _, ok := coreInt(s); ok {
		return tagInt
	}
	if isCoreFloat(s) {
		return tagFloat
	}
	return tagStr
}

// coreInt splits a core-schema integer, [-+]?[0-9]+, 0o[0-7]+ or
// 0x[0-9a-fA-F]+, into its sign-carrying digits and base.
func coreInt(s string) (digits string, base int, ok bool) {
	switch {
	case strings.HasPrefix(s, "0o"):
		digits, base = s[2:], 8
	case strings.HasPrefix(s, "0x"):
		digits, base = s[2:], 16
	default:
		digits, base = s, 10
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
	}
	if base != 10 {
		s = digits
	}
	if s == "" {
		return "", 0, false
	}
	for i := 0; i < len(s); i++ {
		if d := digitValue(s[i]); d >= base {
			return "", 0, false
		}
	}
	return digits, base, true
}

func digitValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return 99
}

// isCoreFloat reports whether s is a core-schema number with a fraction or
// exponent: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?.
func isCoreFloat(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits := func() int {
		i := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		n := i
		s = s[i:]
		return n
	}
	whole := digits()
	frac := 0
	if s != "" && s[0] == '.' {
		s = s[1:]
		frac = digits()
	}
	if whole == 0 && frac == 0 {
		return false
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		if digits() == 0 {
			return false
		}
	}
	return s == ""
}

// canonical returns the canonical form of s read with tag: one spelling
// for every way of writing the same value. Text that is not a valid value
// of its tag is its own canonical form.
func canonical(tag, s string) string {
	switch tag {
	case tagNull:
		if coreTag(s) == tagNull {
			return "null"
		}
	case tagBool:
		switch s {
		case "true", "True", "TRUE":
			return "true"
		case "false", "False", "FALSE":
			return "false"
		}
	case tagInt:
		var v big.Int
		if digits, base, ok := coreInt(s); ok {
			if _, ok := v.SetString(digits, base); ok {
				return v.String()
			}
		}
		// An explicit !!int in another spelling yaml.v3 accepts (0b1, 1_000).
		if _, ok := v.SetString(s, 0); ok {
			return v.String()
		}
	case tagFloat:
		switch strings.TrimPrefix(strings.ToLower(s), "+") {
		case ".nan":
			return ".nan"
		case ".inf":
			return "+.inf"
		case "-.inf":
			return "-.inf"
		}
		if f, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven); err == nil {
			return f.Text('g', -1)
		}
	}
	return s
}

// keyID returns a form of the value of key k (resolved) that is equal for
// equal values only. A collection is compared item by item, a mapping's
// pairs in any order; an alias inside one stands for the node it names,
// which is not expanded, so that a key can be neither a cycle nor a bomb.
func keyID(k *yaml.Node) string {
	return string(appendKeyID(nil, k))
}

func appendKeyID(b []byte, n *yaml.Node) []byte {
	switch n.Kind {
	case yaml.ScalarNode:
		tag, canon := scalarValue(n)
		b = appendLen(append(b, 's'), tag)
		return appendLen(b, canon)
	case yaml.SequenceNode:
		b = append(b, '[')
		for _, c := range n.Content {
			b = appendKeyID(b, c)
		}
		return append(b, ']')
	case yaml.MappingNode:
		pairs := make([]string, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, string(appendKeyID(appendKeyID(nil, n.Content[i]), n.Content[i+1])))
		}
		slices.Sort(pairs)
		b = append(b, '{')
		for _, p := range pairs {
			b = appendLen(b, p)
		}
		return append(b, '}')
	case yaml.AliasNode:
		return fmt.Appendf(b, "*%p", n.Alias)
	}
	return b
}

func appendLen(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	return append(append(b, ':'), s...)
}

// duplicateKey is the message for key k (resolved), a duplicate of the
// key at line first: its text, and its value where the text alone would
// not say why it is a duplicate.
func duplicateKey(k *yaml.Node, first int) string {
	if k.Kind != yaml.ScalarNode {
		return fmt.Sprintf("duplicate key, %s equal to the key at line %d", describe(k), first)
	}
	if isText(k) {
		return fmt.Sprintf("duplicate key %q (first at line %d)", k.Value, first)
	}
	return fmt.Sprintf("duplicate key %q (%s, first at line %d)", k.Value, valueName(k), first)
}

// valueName names the value of scalar k that is not text: "boolean true",
// "integer 1", "float +.inf", "null".
func valueName(k *yaml.Node) string {
	tag, canon := scalarValue(k)
	switch tag {
	case tagNull:
		return "null"
	case tagBool:
		return "boolean " + canon
	case tagInt:
		return "integer " + canon
	case tagFloat:
		return "float " + canon
	}
	return tag + " " + strconv.Quote(canon)
}
