package serve

import (
	"bytes"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/registry"
)

// The limits of an AuthZEN request beyond its body's MaxRequestBytes: a
// batch of small evaluations sharing a large default would otherwise cost
// many times what its body does, to decide and to log.
const (
	// MaxEvaluations bounds the evaluations of one batch.
	MaxEvaluations = 1000
	// MaxExpandedBytes bounds a batch's evaluations with their defaults
	// filled in: the sum of each one's subject, action, resource and
	// context as sent. Every one is decided and logged in full.
	MaxExpandedBytes = 1 << 20
	// MaxSearchLimit bounds a search's page; DefaultSearchLimit is its
	// size when the request names none.
	MaxSearchLimit     = 1000
	DefaultSearchLimit = 100
)

// An azEntity is a subject, resource or action of an AuthZEN request as
// sent. For an action, id holds its name.
type azEntity struct {
	given          bool // present and not null
	typ, id        string
	hasType, hasID bool
	props          map[string]any // nil when none
	// rawProps is the properties object as sent, still in the body
	// buffer; nil when none. raw is the whole entity object.
	rawProps, raw []byte
	// problem says what is wrong with the value, when something is.
	problem string
}

// An azEval is one evaluation as sent: the top level of a request, or an
// item of its evaluations.
type azEval struct {
	subject, action, resource azEntity
	context                   map[string]any // nil when none
	rawContext                []byte         // nil when none
	problem                   string         // the item is not an object
}

// The evaluation semantics of a batch.
type semantic int

const (
	executeAll semantic = iota
	denyOnFirstDeny
	permitOnFirstPermit
)

// An azRequest is a decoded AuthZEN request body.
type azRequest struct {
	azEval
	evaluations []azEval
	semantic    semantic
	page        azPage
}

// azPage is a search request's page object.
type azPage struct {
	given    bool
	token    string
	limit    int
	hasLimit bool
}

// An azDecoder decodes AuthZEN request bodies with the strictness of the
// check decoder (jsontext: invalid UTF-8, unpaired surrogates, duplicate
// names and trailing data are errors), except that unknown members are
// ignored, as the specification requires. A problem with the body as a
// whole (its JSON, a top-level value of the wrong kind) is an error; a
// problem within one evaluation of a batch is recorded in it, so that the
// batch answers that item with an error and decides the others.
type azDecoder struct {
	requestDecoder
}

// decode decodes body into req. snap, when not nil, holds strings to share
// (actor names and subjects); ctx, when not nil, is an empty map to reuse
// for the top-level context.
func (d *azDecoder) decode(body []byte, req *azRequest, snap *registry.Snapshot, ctx map[string]any) error {
	evals := req.evaluations[:0]
	*req = azRequest{evaluations: evals}
	d.data, d.depth, d.snap, d.reuse = body, 0, snap, nil
	d.src = *bytes.NewBuffer(body)
	d.dec.Reset(&d.src)
	defer func() { d.data, d.snap, d.reuse = nil, nil, nil }()
	if err := d.top(req, ctx); err != nil {
		return err
	}
	if rest := bytes.TrimLeft(body[d.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return d.errorAt(len(body)-len(rest), "trailing data after the request object")
	}
	return nil
}

func (d *azDecoder) offset() int { return int(d.dec.InputOffset()) }

// raw returns the value read since start, without the white space and
// colon before it.
func (d *azDecoder) raw(start int) []byte {
	return bytes.TrimLeft(d.data[start:d.offset()], " \t\r\n:,")
}

// openObject reads the '{' of an object, or reports its kind when the
// value is something else (which it skips), or null (ok and given false).
func (d *azDecoder) openObject() (given bool, k jsontext.Kind, err error) {
	switch k = d.dec.PeekKind(); k {
	case '{':
		_, err := d.dec.ReadToken()
		return true, k, d.syntaxError(err)
	case 'n':
		_, err := d.dec.ReadToken()
		return false, k, d.syntaxError(err)
	}
	if _, err := d.dec.ReadValue(); err != nil {
		return false, k, d.syntaxError(err)
	}
	return true, k, nil
}

// skipArray reads the array peek left unread, when k says it is one.
func (d *azDecoder) skipArray(k jsontext.Kind) error {
	if k == '[' {
		return d.skip()
	}
	return nil
}

// skip reads a value nobody reads: jsontext still checks it.
func (d *azDecoder) skip() error {
	_, err := d.dec.ReadValue()
	return d.syntaxError(err)
}

// peek reports the kind of the next value and reads it unless it is an
// object or an array, which the caller reads: null is read and means
// absent, any other value is read and is of the wrong kind.
func (d *azDecoder) peek() (jsontext.Kind, error) {
	switch k := d.dec.PeekKind(); k {
	case '{', '[':
		return k, nil
	case 'n':
		_, err := d.dec.ReadToken()
		return k, d.syntaxError(err)
	default:
		return k, d.skip()
	}
}

// top reads the request object.
func (d *azDecoder) top(req *azRequest, ctx map[string]any) error {
	switch d.dec.PeekKind() {
	case '{':
	case 0:
		_, err := d.dec.ReadToken()
		return d.syntaxError(err)
	default:
		if err := d.skip(); err != nil {
			return err
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
		case "subject", "action", "resource", "context":
			err = d.member(&req.azEval, string(name), ctx)
			if err == nil {
				err = topProblem(&req.azEval, string(name))
			}
		case "evaluations":
			err = d.evaluations(req)
		case "options":
			err = d.options(req)
		case "page":
			err = d.page(&req.page)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	_, err := d.dec.ReadToken()
	return d.syntaxError(err)
}

// topProblem turns a problem of a top-level member into the request's
// error: the whole payload is invalid.
func topProblem(ev *azEval, member string) error {
	p := ev.problem
	switch member {
	case "subject":
		p = ev.subject.problem
	case "action":
		p = ev.action.problem
	case "resource":
		p = ev.resource.problem
	}
	if p != "" {
		return &requestError{msg: p}
	}
	return nil
}

// member reads the subject, action, resource or context of ev. A value of
// the wrong kind is recorded as a problem of the entity (of ev for the
// context). ctx, when not nil, is the map to decode the context into.
func (d *azDecoder) member(ev *azEval, name string, ctx map[string]any) error {
	switch name {
	case "subject":
		return d.entity(&ev.subject, "subject", false)
	case "resource":
		return d.entity(&ev.resource, "resource", false)
	case "action":
		return d.entity(&ev.action, "action", true)
	}
	start := d.offset()
	switch k, err := d.peek(); {
	case err != nil || k == 'n':
		return err
	case k != '{':
		ev.problem = `"context" must be an object, got ` + kind(k)
		return d.skipArray(k)
	}
	d.reuse = ctx
	m, err := d.object()
	d.reuse = nil
	if err != nil {
		return err
	}
	ev.context, ev.rawContext = m, d.raw(start)
	return nil
}

// entity reads a subject or resource (type, id, properties) or an action
// (name, properties); other members are ignored.
func (d *azDecoder) entity(e *azEntity, what string, action bool) error {
	start := d.offset()
	given, k, err := d.openObject()
	if err != nil || !given {
		return err
	}
	e.given = true
	if k != '{' {
		e.problem = strconv.Quote(what) + " must be an object, got " + kind(k)
		return nil
	}
	for d.dec.PeekKind() != '}' {
		var scratch [64]byte
		name, err := d.name(scratch[:0])
		if err != nil {
			return err
		}
		switch member := string(name); {
		case member == "type" && !action:
			e.typ, e.hasType, err = d.stringMember(e, what, member)
		case member == "id" && !action, member == "name" && action:
			e.id, e.hasID, err = d.stringMember(e, what, member)
		case member == "properties":
			err = d.properties(e, what)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntaxError(err)
	}
	e.raw = d.raw(start)
	return nil
}

// stringMember reads a member that must be a string; null is absent.
func (d *azDecoder) stringMember(e *azEntity, what, member string) (string, bool, error) {
	switch k := d.dec.PeekKind(); k {
	case '"':
		s, err := d.str()
		return s, true, err
	case 'n':
		_, err := d.dec.ReadToken()
		return "", false, d.syntaxError(err)
	default:
		if err := d.skip(); err != nil {
			return "", false, err
		}
		if e.problem == "" {
			e.problem = what + "." + member + " must be a string, got " + kind(k)
		}
		return "", false, nil
	}
}

// properties reads an entity's properties: an object, or null for none.
func (d *azDecoder) properties(e *azEntity, what string) error {
	start := d.offset()
	switch k, err := d.peek(); {
	case err != nil || k == 'n':
		return err
	case k != '{':
		if e.problem == "" {
			e.problem = what + ".properties must be an object, got " + kind(k)
		}
		return d.skipArray(k)
	}
	m, err := d.object()
	if err != nil {
		return err
	}
	e.props, e.rawProps = m, d.raw(start)
	return nil
}

// evaluations reads the evaluations array. An item that is not an object
// is recorded as a problem of that item.
func (d *azDecoder) evaluations(req *azRequest) error {
	switch k, err := d.peek(); {
	case err != nil || k == 'n':
		return err
	case k != '[':
		if k == '{' {
			if err := d.skip(); err != nil {
				return err
			}
		}
		return &requestError{msg: `"evaluations" must be an array, got ` + kind(k)}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntaxError(err)
	}
	for d.dec.PeekKind() != ']' {
		if len(req.evaluations) == MaxEvaluations {
			return &requestError{msg: "more than " + strconv.Itoa(MaxEvaluations) + " evaluations in one request"}
		}
		req.evaluations = append(req.evaluations, azEval{})
		ev := &req.evaluations[len(req.evaluations)-1]
		given, k, err := d.openObject()
		if err != nil {
			return err
		}
		if !given || k != '{' {
			ev.problem = "the evaluation must be an object, got " + kind(k)
			continue
		}
		for d.dec.PeekKind() != '}' {
			var scratch [64]byte
			name, err := d.name(scratch[:0])
			if err != nil {
				return err
			}
			switch string(name) {
			case "subject", "action", "resource", "context":
				err = d.member(ev, string(name), nil)
			default:
				err = d.skip()
			}
			if err != nil {
				return err
			}
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return d.syntaxError(err)
		}
	}
	_, err := d.dec.ReadToken()
	return d.syntaxError(err)
}

// options reads the options object: evaluations_semantic, and others,
// which are ignored.
func (d *azDecoder) options(req *azRequest) error {
	given, k, err := d.openObject()
	if err != nil || !given {
		return err
	}
	if k != '{' {
		return &requestError{msg: `"options" must be an object, got ` + kind(k)}
	}
	for d.dec.PeekKind() != '}' {
		var scratch [64]byte
		name, err := d.name(scratch[:0])
		if err != nil {
			return err
		}
		if string(name) != "evaluations_semantic" {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		const want = "execute_all, deny_on_first_deny or permit_on_first_permit"
		if k := d.dec.PeekKind(); k != '"' {
			if err := d.skip(); err != nil {
				return err
			}
			return &requestError{msg: "options.evaluations_semantic must be " + want + ", got " + kind(k)}
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		switch s {
		case "execute_all":
			req.semantic = executeAll
		case "deny_on_first_deny":
			req.semantic = denyOnFirstDeny
		case "permit_on_first_permit":
			req.semantic = permitOnFirstPermit
		default:
			return &requestError{msg: "options.evaluations_semantic must be " + want + ", got " + strconv.Quote(s)}
		}
	}
	_, err = d.dec.ReadToken()
	return d.syntaxError(err)
}

// page reads a search request's page object: token, limit, and others
// (properties), which are ignored.
func (d *azDecoder) page(p *azPage) error {
	given, k, err := d.openObject()
	if err != nil || !given {
		return err
	}
	if k != '{' {
		return &requestError{msg: `"page" must be an object, got ` + kind(k)}
	}
	p.given = true
	for d.dec.PeekKind() != '}' {
		var scratch [64]byte
		name, err := d.name(scratch[:0])
		if err != nil {
			return err
		}
		switch string(name) {
		case "token":
			switch k := d.dec.PeekKind(); k {
			case '"':
				if p.token, err = d.str(); err != nil {
					return err
				}
			case 'n':
				_, err = d.dec.ReadToken()
				err = d.syntaxError(err)
			default:
				if err := d.skip(); err != nil {
					return err
				}
				return &requestError{msg: "page.token must be a string, got " + kind(k)}
			}
		case "limit":
			err = d.limit(p)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	_, err = d.dec.ReadToken()
	return d.syntaxError(err)
}

// limit reads page.limit: an integer from 0 to MaxSearchLimit, or null.
func (d *azDecoder) limit(p *azPage) error {
	switch k := d.dec.PeekKind(); k {
	case '0':
		v, err := d.number()
		if err != nil {
			return err
		}
		n, isInt := v.(int64)
		if !isInt || n < 0 || n > MaxSearchLimit {
			return limitError(strconv.Quote(numberText(v)))
		}
		p.limit, p.hasLimit = int(n), true
		return nil
	case 'n':
		_, err := d.dec.ReadToken()
		return d.syntaxError(err)
	default:
		if err := d.skip(); err != nil {
			return err
		}
		return limitError(kind(k))
	}
}

// limitError says that page.limit is not what it must be, but got.
func limitError(got string) error {
	return &requestError{msg: "page.limit must be an integer from 0 to " + strconv.Itoa(MaxSearchLimit) + ", got " + got}
}

func numberText(v any) string {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return ""
}
