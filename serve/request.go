package serve

import (
	"math"
	"strconv"

	"github.com/coulomb/flex-auth/internal/jsontext"
	"github.com/coulomb/flex-auth/registry"
)

// DefaultAction is the action of a check request that names none.
const DefaultAction = "ssh.sign"

// maxDepth bounds the nesting of objects and arrays in a request body. A
// signing context is flat in practice; the bound keeps a hostile body from
// recursing deep.
const maxDepth = 64

// A checkRequest is a decoded POST /v1/check body.
type checkRequest struct {
	Subject, Action, Resource string
	// Context is nil when the request has none (absent or null).
	Context map[string]any
	// rawContext is the context object as sent, still in the body buffer;
	// the decision log copies it with insignificant whitespace removed.
	rawContext []byte
}

// A requestError is a problem with a request body. Its message is public:
// it names the part of the request at fault and never anything internal.
type requestError struct {
	msg string
	// syntax marks errors in the JSON text itself, as opposed to a valid
	// JSON document that is not a valid check request.
	syntax bool
}

func (e *requestError) Error() string { return e.msg }

// decodeRequest decodes a check request body strictly: one JSON object with
// the members subject, resource (non-empty strings), action (a string,
// default ssh.sign) and context (an object); null for action or context
// means absent. Unknown members, duplicate members (at any level), invalid
// UTF-8, lone surrogates and trailing data are errors, so that no two JSON
// parsers could read the same body as two different requests.
//
// Numbers in the context become int64 when written as integers (no
// fraction, no exponent) and fit, float64 otherwise: 24 is an integer,
// 24.0 and 2.4e1 are not.
//
// Strings that snap already holds (actor names and subjects, what valid
// requests are made of) and the member names are shared rather than
// allocated; snap may be nil. ctx, when not nil, is an empty map to reuse
// for the context.
func decodeRequest(data []byte, req *checkRequest, snap *registry.Snapshot, ctx map[string]any) error {
	*req = checkRequest{}
	p := parser{data: data, snap: snap, reuse: ctx}
	p.skipSpace()
	if p.pos == len(p.data) {
		return &requestError{msg: "request body is empty; want a JSON object", syntax: true}
	}
	if p.data[p.pos] != '{' {
		if _, err := p.value(); err != nil {
			return err
		}
		return &requestError{msg: "request body must be a JSON object"}
	}
	p.pos++
	var seen uint8 // bit per known member
	first := true
	for {
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == '}' && first {
			p.pos++
			break
		}
		key, err := p.key()
		if err != nil {
			return err
		}
		var bit uint8
		switch key {
		case "subject":
			bit = 1
		case "action":
			bit = 2
		case "resource":
			bit = 4
		case "context":
			bit = 8
		default:
			return &requestError{msg: "unknown member " + strconv.Quote(key) + " in request; the members are subject, action, resource and context"}
		}
		if seen&bit != 0 {
			return &requestError{msg: "duplicate member " + strconv.Quote(key) + " in request"}
		}
		seen |= bit
		p.skipSpace()
		switch bit {
		case 1, 2, 4:
			s, isNull, err := p.stringMember(key)
			if err != nil {
				return err
			}
			switch {
			case bit == 2 && isNull:
				// absent: the default applies
			case isNull || s == "" && bit != 2:
				return &requestError{msg: strconv.Quote(key) + " must be a non-empty string"}
			case s == "":
				return &requestError{msg: `"action" must be a non-empty string when given`}
			case bit == 1:
				req.Subject = s
			case bit == 2:
				req.Action = s
			default:
				req.Resource = s
			}
		case 8:
			start := p.pos
			if p.pos < len(p.data) && p.data[p.pos] == 'n' {
				if err := p.literal("null"); err != nil {
					return err
				}
				break
			}
			if p.pos < len(p.data) && p.data[p.pos] != '{' {
				v, err := p.value()
				if err != nil {
					return err
				}
				return &requestError{msg: `"context" must be an object, got ` + kind(v)}
			}
			v, err := p.value()
			if err != nil {
				return err
			}
			req.Context = v.(map[string]any)
			req.rawContext = p.data[start:p.pos]
		}
		first = false
		p.skipSpace()
		if p.pos == len(p.data) {
			return p.errorf("unexpected end of input in the request object")
		}
		if c := p.data[p.pos]; c == ',' {
			p.pos++
			continue
		} else if c == '}' {
			p.pos++
			break
		}
		return p.errorf("want ',' or '}' after a member of the request object")
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return p.errorf("trailing data after the request object")
	}
	if seen&1 == 0 {
		return &requestError{msg: `"subject" is required`}
	}
	if seen&4 == 0 {
		return &requestError{msg: `"resource" is required`}
	}
	if req.Action == "" {
		req.Action = DefaultAction
	}
	return nil
}

// kind names the JSON type of a decoded value for error messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case int64, float64:
		return "a number"
	case []any:
		return "an array"
	}
	return "an object"
}

// parser is a strict, allocation-frugal JSON reader over a complete body.
type parser struct {
	data  []byte
	pos   int
	depth int
	snap  *registry.Snapshot // strings to share; may be nil
	reuse map[string]any     // for the context object; nil allocates
}

func (p *parser) errorf(msg string) error {
	return &requestError{msg: "invalid JSON at byte " + strconv.Itoa(p.pos) + ": " + msg, syntax: true}
}

// lexError turns a *jsontext.Error into a request error. Strict errors are
// for text that is JSON but that this decoder refuses: invalid UTF-8 and
// unpaired surrogates, which other parsers would each repair their own
// way.
func lexError(err error) error {
	e := err.(*jsontext.Error)
	if e.Strict {
		return &requestError{msg: "invalid request at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg}
	}
	return &requestError{msg: "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg, syntax: true}
}

func (p *parser) skipSpace() { p.pos = jsontext.SkipSpace(p.data, p.pos) }

// key reads an object member name and the ':' after it.
func (p *parser) key() (string, error) {
	if p.pos == len(p.data) {
		return "", p.errorf("unexpected end of input; want a member name")
	}
	if p.data[p.pos] != '"' {
		return "", p.errorf("want a member name in double quotes")
	}
	k, err := p.str()
	if err != nil {
		return "", err
	}
	p.skipSpace()
	if p.pos == len(p.data) || p.data[p.pos] != ':' {
		return "", p.errorf("want ':' after a member name")
	}
	p.pos++
	return k, nil
}

// stringMember reads the value of a request member that must be a string
// or null.
func (p *parser) stringMember(key string) (s string, isNull bool, err error) {
	if p.pos < len(p.data) {
		switch p.data[p.pos] {
		case '"':
			s, err = p.str()
			return s, false, err
		case 'n':
			return "", true, p.literal("null")
		}
	}
	v, err := p.value()
	if err != nil {
		return "", false, err
	}
	return "", false, &requestError{msg: strconv.Quote(key) + " must be a string, got " + kind(v)}
}

func (p *parser) literal(lit string) error {
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return p.errorf("invalid literal; want " + lit)
	}
	p.pos += len(lit)
	return nil
}

// value reads any JSON value.
func (p *parser) value() (any, error) {
	p.skipSpace()
	if p.pos == len(p.data) {
		return nil, p.errorf("unexpected end of input; want a value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.strValue()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return nil, p.errorf("want a value")
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return &requestError{msg: "request nests deeper than " + strconv.Itoa(maxDepth) + " levels"}
	}
	return nil
}

func (p *parser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '{'
	var m map[string]any
	if p.depth == 1 && p.reuse != nil { // the context object
		m = p.reuse
	} else {
		m = make(map[string]any)
	}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return m, nil
	}
	for {
		p.skipSpace()
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, &requestError{msg: "duplicate key " + strconv.Quote(k) + " in an object in the request"}
		}
		m[k] = v
		p.skipSpace()
		if p.pos == len(p.data) {
			return nil, p.errorf("unexpected end of input in an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			return m, nil
		default:
			return nil, p.errorf("want ',' or '}' in an object")
		}
	}
}

func (p *parser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '['
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return a, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos == len(p.data) {
			return nil, p.errorf("unexpected end of input in an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			return a, nil
		default:
			return nil, p.errorf("want ',' or ']' in an array")
		}
	}
}

// number reads a number: int64 when written as an integer that fits,
// float64 otherwise.
func (p *parser) number() (any, error) {
	start := p.pos
	end, integral, err := jsontext.ReadNumber(p.data, start)
	if err != nil {
		return nil, lexError(err)
	}
	p.pos = end
	lit := p.data[start:end]
	if integral {
		if n, ok := jsontext.ParseInt(lit); ok {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		// Only a range error can get here: the grammar was checked above.
		return nil, &requestError{msg: "number " + string(lit) + " in the request is out of range"}
	}
	return f, nil
}

// strValue reads a string as an interface value.
func (p *parser) strValue() (any, error) {
	s, err := p.str()
	return s, err
}

// str reads a string. A string costs at most one allocation, none when
// interned: one with escapes is decoded on the stack.
func (p *parser) str() (string, error) {
	var scratch [64]byte
	b, end, err := jsontext.ReadString(p.data, p.pos, scratch[:0])
	if err != nil {
		return "", lexError(err)
	}
	p.pos = end
	if s, ok := intern(p.snap, b); ok {
		return s, nil
	}
	return string(b), nil
}

// intern returns the string equal to b when snap or the request format
// already holds one: a member name, the default action, a context member
// the ops-warden package reads, an actor name or one of its subjects. It
// allocates nothing and keeps no table: actors are found by binary search.
func intern(snap *registry.Snapshot, b []byte) (string, bool) {
	switch string(b) {
	case "subject":
		return "subject", true
	case "action":
		return "action", true
	case "resource":
		return "resource", true
	case "context":
		return "context", true
	case DefaultAction:
		return DefaultAction, true
	case "principal":
		return "principal", true
	case "ttl_hours":
		return "ttl_hours", true
	}
	if snap == nil {
		return "", false
	}
	name := b
	if len(b) > 4 && string(b[:4]) == "iam:" {
		name = b[4:]
	}
	actors := snap.Actors
	lo, hi := 0, len(actors)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if actors[m].Name < string(name) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(actors) || actors[lo].Name != string(name) {
		return "", false
	}
	a := &actors[lo]
	if len(name) == len(b) {
		return a.Name, true
	}
	for _, sub := range a.Subjects {
		if sub == string(b) {
			return sub, true
		}
	}
	return "", false
}

// appendCompact appends a JSON text that is known to be valid, without
// insignificant whitespace, so that a multi-line context stays on its
// decision log line.
func appendCompact(dst, src []byte) []byte {
	inString := false
	start := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}
