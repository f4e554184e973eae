package registry

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/internal/redact"
)

// ParseUnverified decodes and validates a snapshot as Parse does, but does
// not check its digest, so that drift can report a hand edit as drift
// rather than fail on it; Verify checks it. The result is normalized and
// keeps the stored digest. Every problem is reported, as Errors.
//
// The JSON text is read by jsontext, which is strict by construction:
// invalid UTF-8, unpaired surrogate escapes and duplicate member names (as
// decoded, so "typ\u0065" duplicates "type") are errors. What it reads is
// checked here member by member, so that one run reports every wrong type,
// unknown and missing member rather than the first. A syntax error is
// reported alone; a duplicate name stops the decode where it is.
func ParseUnverified(data []byte) (*Snapshot, error) {
	d := &decoder{data: data}
	d.dec.Reset(bytes.NewBuffer(data)) // reads data in place, without a copy
	s, err := d.snapshot()
	if err != nil {
		if err != errDuplicate {
			d.errs = Errors{{Err: syntaxError(data, err)}}
		}
		return nil, d.errs
	}
	d.validate(s)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	if !s.isNormalized() {
		s.writtenDigest = s.ComputeDigest() // before normalize changes the order
		s.normalize()
	}
	return s, nil
}

// errDuplicate ends a decode at a duplicate member name, which is already
// reported with its path: jsontext reads no further.
var errDuplicate = errors.New("duplicate member")

// syntaxError says where in the text a jsontext error is, as a line and a
// column, and what it is, in jsontext's words. jsontext's words may quote
// the text (an invalid character, a lone surrogate's escape): the
// redacted form says only that the text is not JSON there.
func syntaxError(data []byte, err error) error {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		// jsontext reports input that ends before the first value as a
		// bare io.EOF.
		line, col := position(data, len(data))
		return fmt.Errorf("line %d, column %d: unexpected end of input", line, col)
	}
	line, col := position(data, int(se.ByteOffset))
	full := fmt.Errorf("line %d, column %d: %w", line, col, se.Err)
	if se.Err == errTrailing {
		return full
	}
	return redact.Error(full, fmt.Sprintf("line %d, column %d: not valid JSON", line, col))
}

// errTrailing is the syntax error of data after the snapshot's object.
var errTrailing = errors.New("data after the snapshot")

// position returns the 1-based line and column of byte offset off.
func position(data []byte, off int) (line, col int) {
	off = min(off, len(data))
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// A loc names a value of the snapshot for a report: "schema",
// "actors[2]", "actors[2].max_ttl_hours", "actors[2].subjects[0]". The path
// is built only when there is something to report: on the happy path a
// 100,000-actor load would spend more on paths than on parsing.
type loc struct {
	actor   int    // index in actors, or -1
	member  string // member name, or "" for the actor or document itself
	subject int    // index in subjects, or -1
}

func top(member string) loc { return loc{actor: -1, member: member, subject: -1} }

func (l loc) in(member string) loc { return loc{actor: l.actor, member: member, subject: -1} }

func (l loc) String() string {
	p := ""
	if l.actor >= 0 {
		p = "actors[" + strconv.Itoa(l.actor) + "]"
	}
	p = join(p, l.member)
	if l.subject >= 0 {
		p += "[" + strconv.Itoa(l.subject) + "]"
	}
	return p
}

func join(path, key string) string {
	if path == "" || key == "" {
		return path + key
	}
	return path + "." + key
}

// decoder reads a snapshot into typed values, reporting wrong types,
// unknown and missing members by path and going on, so that one run
// reports every problem.
type decoder struct {
	data []byte
	dec  jsontext.Decoder
	buf  []byte // strings with escapes are decoded here
	errs Errors
	// bad holds the paths already reported while decoding (wrong type,
	// missing), so that validation does not report them a second time.
	bad map[string]bool
}

// errorf reports a problem at path. Values read from the file are passed
// as redact.Value (or a redact.Text, or an error with a redacted form), so
// that the error's redacted form leaves them out.
func (d *decoder) errorf(path, format string, args ...any) {
	d.report(&FieldError{Path: path, Err: redact.Errorf(format, args...)})
}

// memberErrorf reports a problem with the member name of the object at:
// a name read from the file, which the redacted path leaves out unless it
// is one of the snapshot's own member names.
func (d *decoder) memberErrorf(at loc, name, format string, args ...any) {
	fe := &FieldError{Path: at.in(name).String(), Err: redact.Errorf(format, args...)}
	if !knownMembers[name] {
		fe.redactedPath = at.in(redact.Hidden).String()
	}
	d.report(fe)
}

func (d *decoder) report(fe *FieldError) {
	if d.bad == nil {
		d.bad = make(map[string]bool)
	}
	d.bad[fe.Path] = true
	if len(d.errs) < maxErrors {
		d.errs = append(d.errs, fe)
	}
}

// knownMembers are the member names a snapshot has, at any level.
var knownMembers = map[string]bool{
	"schema": true, "digest": true, "source": true, "policy_package": true, "actors": true,
	"name": true, "type": true, "principal": true, "default_ttl_hours": true, "max_ttl_hours": true, "subjects": true,
}

// wrongType reads the value at the current position and reports it.
func (d *decoder) wrongType(at loc, want string) error {
	v, err := d.dec.ReadValue()
	if err == nil {
		d.errorf(at.String(), "want %s, got %s", want, describe(v))
	}
	return err
}

// describe names a JSON value for "want X, got Y" messages; its redacted
// form names the kind of value only.
func describe(v jsontext.Value) redact.Text {
	switch v.Kind() {
	case '"':
		s, _ := jsontext.AppendUnquote(nil, v)
		return redact.Pair("string "+strconv.Quote(string(s)), "a string")
	case '0':
		return redact.Pair("number "+string(v), "a number")
	case '{':
		return redact.Pair("an object", "an object")
	case '[':
		return redact.Pair("an array", "an array")
	case 'n':
		return redact.Pair("null", "null")
	}
	return redact.Pair("boolean "+string(v), "a boolean")
}

// object reads the object at the current position, calling member with
// each member name; member reads the value and reports whether it knows
// the name. Unknown members are reported and skipped. ok is false when
// the value is not an object, which is reported.
func (d *decoder) object(at loc, member func(name []byte) (known bool, err error)) (ok bool, err error) {
	if d.dec.PeekKind() != '{' {
		return false, d.wrongType(at, "an object")
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return false, err
	}
	for d.dec.PeekKind() != '}' {
		raw, err := d.dec.ReadValue()
		if err != nil {
			var se *jsontext.SyntacticError
			if errors.As(err, &se) && se.Err == jsontext.ErrDuplicateName {
				d.memberErrorf(at, se.JSONPointer.LastToken(), "duplicate member")
				return true, errDuplicate
			}
			return true, err
		}
		name, err := d.unquote(raw)
		if err != nil {
			return true, err
		}
		known, err := member(name)
		if err != nil {
			return true, err
		}
		if !known {
			if LooksSecret(string(name)) {
				d.memberErrorf(at, string(name), "unknown member that looks like key material; a registry snapshot is a non-secret fixture and never carries credentials")
			} else {
				d.memberErrorf(at, string(name), "unknown member")
			}
			if err := d.dec.SkipValue(); err != nil {
				return true, err
			}
		}
	}
	_, err = d.dec.ReadToken()
	return true, err
}

// array reads the array at the current position, calling elem for each
// element; elem reads it.
func (d *decoder) array(at loc, elem func() error) error {
	if d.dec.PeekKind() != '[' {
		return d.wrongType(at, "an array")
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() != ']' {
		if err := elem(); err != nil {
			return err
		}
	}
	_, err := d.dec.ReadToken()
	return err
}

// missing reports a required member that the object at had not.
func (d *decoder) missing(at loc, name string, seen bool) {
	if !seen {
		d.errorf(at.in(name).String(), "missing")
	}
}

// unquote returns the content of the JSON string raw: a slice of the
// input when it has no escapes, as every string generate writes, else
// decoded into d.buf, until the next call.
func (d *decoder) unquote(raw jsontext.Value) ([]byte, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	b, err := jsontext.AppendUnquote(d.buf[:0], raw)
	d.buf = b[:0]
	return b, err
}

// string reads a string into dst.
func (d *decoder) string(at loc, dst *string) error {
	if d.dec.PeekKind() != '"' {
		return d.wrongType(at, "a string")
	}
	raw, err := d.dec.ReadValue()
	if err != nil {
		return err
	}
	b, err := d.unquote(raw)
	*dst = string(b)
	return err
}

// ttl reads a number of hours, an integer in the TTL range, into dst.
func (d *decoder) ttl(at loc, dst *int) error {
	if d.dec.PeekKind() != '0' {
		return d.wrongType(at, "an integer")
	}
	lit, err := d.dec.ReadValue()
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(string(lit), 10, 64) // refuses 24.0 and 24e0 too
	if err != nil {
		d.errorf(at.String(), "want an integer, got %s", redact.Value(string(lit)))
		return nil
	}
	if err := CheckTTL(v); err != nil {
		d.errorf(at.String(), "%v", err)
		return nil
	}
	*dst = int(v)
	return nil
}

func (d *decoder) snapshot() (*Snapshot, error) {
	s := &Snapshot{}
	var schema, digest, source, pkg, actors bool
	doc := top("")
	isObject, err := d.object(doc, func(name []byte) (bool, error) {
		switch string(name) {
		case "schema":
			schema = true
			return true, d.string(top("schema"), &s.Schema)
		case "digest":
			digest = true
			return true, d.string(top("digest"), &s.Digest)
		case "source":
			source = true
			return true, d.string(top("source"), &s.Source)
		case "policy_package":
			pkg = true
			return true, d.string(top("policy_package"), &s.PolicyPackage)
		case "actors":
			actors = true
			return true, d.actors(&s.Actors)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if isObject {
		d.missing(doc, "schema", schema)
		d.missing(doc, "digest", digest)
		d.missing(doc, "source", source)
		d.missing(doc, "policy_package", pkg)
		d.missing(doc, "actors", actors)
	}
	if rest := bytes.TrimLeft(d.data[d.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, &jsontext.SyntacticError{ByteOffset: int64(len(d.data) - len(rest)), Err: errTrailing}
	}
	return s, nil
}

func (d *decoder) actors(dst *[]Actor) error {
	// A canonical actor takes about 250 bytes: size the slice once.
	actors := make([]Actor, 0, len(d.data)/250+1)
	err := d.array(top("actors"), func() error {
		actors = append(actors, Actor{})
		return d.actor(len(actors)-1, &actors[len(actors)-1])
	})
	*dst = actors
	return err
}

func (d *decoder) actor(i int, a *Actor) error {
	at := loc{actor: i, subject: -1}
	var name, typ, principal, ttl, maxTTL, subjects bool
	isObject, err := d.object(at, func(member []byte) (bool, error) {
		switch string(member) {
		case "name":
			name = true
			return true, d.string(at.in("name"), &a.Name)
		case "type":
			typ = true
			return true, d.string(at.in("type"), &a.Type)
		case "principal":
			principal = true
			return true, d.string(at.in("principal"), &a.Principal)
		case "default_ttl_hours":
			ttl = true
			return true, d.ttl(at.in("default_ttl_hours"), &a.DefaultTTLHours)
		case "max_ttl_hours":
			maxTTL = true
			return true, d.ttl(at.in("max_ttl_hours"), &a.MaxTTLHours)
		case "subjects":
			subjects = true
			return true, d.subjects(at.in("subjects"), &a.Subjects)
		}
		return false, nil
	})
	if err != nil || !isObject {
		return err
	}
	d.missing(at, "name", name)
	d.missing(at, "type", typ)
	d.missing(at, "principal", principal)
	d.missing(at, "default_ttl_hours", ttl)
	d.missing(at, "max_ttl_hours", maxTTL)
	d.missing(at, "subjects", subjects)
	return nil
}

func (d *decoder) subjects(at loc, dst *[]string) error {
	subs := make([]string, 0, 4)
	err := d.array(at, func() error {
		subs = append(subs, "")
		el := at
		el.subject = len(subs) - 1
		return d.string(el, &subs[len(subs)-1])
	})
	*dst = subs
	return err
}
