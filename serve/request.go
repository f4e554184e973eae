package serve

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/registry"
)

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
// means absent. Unknown members, duplicate members (at any level, as
// decoded: "resourc\u0065" duplicates "resource"), invalid UTF-8, lone
// surrogates and trailing data are errors, so that no two JSON parsers
// could read the same body as two different requests. The JSON text is
// read by jsontext, which refuses all of these by construction; this
// decoder checks what it reads against the request format.
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
	var d requestDecoder
	return d.decode(data, req, snap, ctx)
}

// A requestDecoder decodes check request bodies. The zero value is ready
// to use; reusing one saves the allocations of its jsontext.Decoder.
type requestDecoder struct {
	dec   jsontext.Decoder
	src   bytes.Buffer // the body, read in place
	data  []byte
	depth int
	snap  *registry.Snapshot // strings to share; may be nil
	reuse map[string]any     // for the context object; nil allocates
}

// decode is decodeRequest with d's buffers.
func (d *requestDecoder) decode(data []byte, req *checkRequest, snap *registry.Snapshot, ctx map[string]any) error {
	*req = checkRequest{}
	d.data, d.depth, d.snap, d.reuse = data, 0, snap, ctx
	d.src = *bytes.NewBuffer(data)
	d.dec.Reset(&d.src)
	defer func() { d.data, d.snap, d.reuse = nil, nil, nil }() // hold no request, no registry
	if err := d.request(req); err != nil {
		return err
	}
	if rest := bytes.TrimLeft(data[d.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return d.errorAt(len(data)-len(rest), "trailing data after the request object")
	}
	if req.Subject == "" {
		return &requestError{msg: `"subject" is required`}
	}
	if req.Resource == "" {
		return &requestError{msg: `"resource" is required`}
	}
	if req.Action == "" {
		req.Action = registry.DefaultAction
	}
	return nil
}

// request reads the request object.
func (d *requestDecoder) request(req *checkRequest) error {
	switch d.dec.PeekKind() {
	case '{':
	case 0: // an error, or nothing but white space
		_, err := d.dec.ReadToken()
		return d.syntaxError(err)
	default:
		if _, err := d.dec.ReadValue(); err != nil {
			return d.syntaxError(err)
		}
		return &requestError{msg: "request body must be a JSON object"}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntaxError(err)
	}
	for d.dec.PeekKind() != '}' {
		var scratch [64]byte
		name, err := d.name(scratch[:0])
		if err != nil {
			return err
		}
		switch string(name) {
		case "subject":
			req.Subject, err = d.requiredString("subject")
		case "resource":
			req.Resource, err = d.requiredString("resource")
		case "action":
			req.Action, err = d.action()
		case "context":
			err = d.context(req)
		default:
			return &requestError{msg: "unknown member " + strconv.Quote(string(name)) + " in request; the members are subject, action, resource and context"}
		}
		if err != nil {
			return err
		}
	}
	_, err := d.dec.ReadToken()
	return d.syntaxError(err)
}

// requiredString reads the value of subject or resource: a non-empty
// string.
func (d *requestDecoder) requiredString(member string) (string, error) {
	s, isString, err := d.stringValue(member)
	if err == nil && (!isString || s == "") {
		err = &requestError{msg: strconv.Quote(member) + " must be a non-empty string"}
	}
	return s, err
}

// action reads the value of action: a non-empty string, or null for the
// default.
func (d *requestDecoder) action() (string, error) {
	s, isString, err := d.stringValue("action")
	if err == nil && isString && s == "" {
		err = &requestError{msg: `"action" must be a non-empty string when given`}
	}
	return s, err
}

// stringValue reads the value of a member that must be a string or null.
func (d *requestDecoder) stringValue(member string) (s string, isString bool, err error) {
	switch k := d.dec.PeekKind(); k {
	case '"':
		s, err = d.str()
		return s, true, err
	case 'n':
		_, err = d.dec.ReadToken()
		return "", false, d.syntaxError(err)
	default:
		if _, err := d.dec.ReadValue(); err != nil {
			return "", false, d.syntaxError(err)
		}
		return "", false, &requestError{msg: strconv.Quote(member) + " must be a string, got " + kind(k)}
	}
}

// context reads the value of context: an object, or null for none.
func (d *requestDecoder) context(req *checkRequest) error {
	start := int(d.dec.InputOffset())
	switch k := d.dec.PeekKind(); k {
	case '{':
	case 'n':
		_, err := d.dec.ReadToken()
		return d.syntaxError(err)
	default:
		if _, err := d.dec.ReadValue(); err != nil {
			return d.syntaxError(err)
		}
		return &requestError{msg: `"context" must be an object, got ` + kind(k)}
	}
	v, err := d.object()
	if err != nil {
		return err
	}
	req.Context = v
	// The context as sent, from its '{' to its '}', for the decision log.
	req.rawContext = bytes.TrimLeft(d.data[start:d.dec.InputOffset()], " \t\r\n:")
	return nil
}

// kind names a JSON kind for error messages.
func kind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '[':
		return "an array"
	}
	return "an object"
}

// value reads any JSON value.
func (d *requestDecoder) value() (any, error) {
	switch d.dec.PeekKind() {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.str()
	case '0':
		return d.number()
	}
	tok, err := d.dec.ReadToken() // null, true, false, or an error
	if err != nil {
		return nil, d.syntaxError(err)
	}
	if tok.Kind() == 'n' {
		return nil, nil
	}
	return tok.Bool(), nil
}

func (d *requestDecoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return &requestError{msg: "request nests deeper than " + strconv.Itoa(maxDepth) + " levels"}
	}
	_, err := d.dec.ReadToken() // '{' or '['
	return d.syntaxError(err)
}

func (d *requestDecoder) leave() error {
	d.depth--
	_, err := d.dec.ReadToken() // '}' or ']'
	return d.syntaxError(err)
}

func (d *requestDecoder) object() (map[string]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	var m map[string]any
	if d.depth == 1 && d.reuse != nil { // the context object
		m = d.reuse
	} else {
		m = make(map[string]any)
	}
	for d.dec.PeekKind() != '}' {
		var scratch [64]byte
		name, err := d.name(scratch[:0])
		if err != nil {
			return nil, err
		}
		k := d.share(name)
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, d.leave()
}

func (d *requestDecoder) array() ([]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	a := []any{}
	for d.dec.PeekKind() != ']' {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	return a, d.leave()
}

// number reads a number: int64 when written as an integer that fits,
// float64 otherwise.
func (d *requestDecoder) number() (any, error) {
	lit, err := d.dec.ReadValue()
	if err != nil {
		return nil, d.syntaxError(err)
	}
	if bytes.IndexAny(lit, ".eE") < 0 {
		if n, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		// Only a range error can get here: jsontext checked the grammar.
		return nil, &requestError{msg: "number " + string(lit) + " in the request is out of range"}
	}
	return f, nil
}

// name reads an object member name, decoding escapes into buf.
func (d *requestDecoder) name(buf []byte) ([]byte, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return nil, d.syntaxError(err)
	}
	return unquote(raw, buf), nil
}

// str reads a string. A string costs at most one allocation, none when
// shared: one with escapes is decoded on the stack.
func (d *requestDecoder) str() (string, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", d.syntaxError(err)
	}
	var scratch [64]byte
	return d.share(unquote(raw, scratch[:0])), nil
}

// unquote returns the content of the string literal raw, which jsontext
// has checked: raw itself without its quotes when it has no escapes,
// else decoded into buf.
func unquote(raw, buf []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	b, _ := jsontext.AppendUnquote(buf, raw)
	return b
}

// share returns b as a string, shared with snap or the request format
// when one of them holds it.
func (d *requestDecoder) share(b []byte) string {
	if s, ok := intern(d.snap, b); ok {
		return s
	}
	return string(b)
}

// syntaxError turns a jsontext error into a request error that says where
// in the body it is. Invalid UTF-8 and unpaired surrogate escapes are not
// syntax errors: they are text that RFC 8259's grammar allows but that
// this decoder refuses, because other parsers would each repair it their
// own way. Neither are duplicate names.
func (d *requestDecoder) syntaxError(err error) error {
	if err == nil {
		return nil
	}
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) { // io.EOF: no value at all
		return &requestError{msg: "request body is empty; want a JSON object", syntax: true}
	}
	if errors.Is(se.Err, jsontext.ErrDuplicateName) {
		name := strconv.Quote(se.JSONPointer.LastToken())
		if se.JSONPointer.Parent() == "" {
			return &requestError{msg: "duplicate member " + name + " in request"}
		}
		return &requestError{msg: "duplicate key " + name + " in an object in the request"}
	}
	off := int(se.ByteOffset)
	at := d.data[min(off, len(d.data)):]
	if r, n := utf8.DecodeRune(at); r == utf8.RuneError && n == 1 || surrogateEscape(at) {
		return &requestError{msg: "invalid request at byte " + strconv.Itoa(off) + ": " + se.Err.Error()}
	}
	return d.errorAt(off, se.Err.Error())
}

func (d *requestDecoder) errorAt(off int, msg string) error {
	return &requestError{msg: "invalid JSON at byte " + strconv.Itoa(off) + ": " + msg, syntax: true}
}

// surrogateEscape reports whether b starts with a \u escape of a UTF-16
// surrogate, \ud800 to \udfff.
func surrogateEscape(b []byte) bool {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return false
	}
	r, err := strconv.ParseUint(string(b[2:6]), 16, 16)
	return err == nil && utf16.IsSurrogate(rune(r))
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
	case registry.DefaultAction:
		return registry.DefaultAction, true
	case "principal":
		return "principal", true
	case "ttl_hours":
		return "ttl_hours", true
	case "actor": // the AuthZEN types of an ops-warden request
		return "actor", true
	case "iam":
		return "iam", true
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
