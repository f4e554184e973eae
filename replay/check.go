package replay

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/policy"
)

// checkDecider decides again the decisions of a registry package: a
// subject, an action, a resource and a context, as the line records them,
// and for a decision made on the AuthZEN API the resource's type, as
// serve decided them.
type checkDecider struct{ ev *policy.Evaluator }

func (c checkDecider) decide(rec *decisionlog.Record, sc *scratch) (Outcome, error) {
	req := policy.Request{
		Subject:  sc.str(rec.Subject),
		Action:   sc.str(rec.Action),
		Resource: sc.str(rec.Resource),
	}
	if req.Subject == "" || req.Resource == "" || req.Action == "" {
		return Outcome{}, errors.New("subject, action and resource must be non-empty strings")
	}
	var err error
	if req.Context, err = sc.object("context", rec.Context); err != nil {
		return Outcome{}, err
	}
	if rec.AuthZEN != nil {
		a, err := sc.access(rec)
		if err != nil {
			return Outcome{}, err
		}
		req.ResourceType = a.Resource.Type
	}
	d := c.ev.Decide(&req)
	return Outcome{Effect: string(d.Effect), Reason: d.Reason}, nil
}

// accessDecider decides again the decisions of an AuthZEN model package:
// the subject, action and resource of the line's authzen member, with the
// properties they were sent with, and its context.
type accessDecider struct{ ev *policy.Evaluator }

func (c accessDecider) decide(rec *decisionlog.Record, sc *scratch) (Outcome, error) {
	if rec.AuthZEN == nil {
		return Outcome{}, errors.New("no authzen member: the package decides AuthZEN requests only")
	}
	a, err := sc.access(rec)
	if err != nil {
		return Outcome{}, err
	}
	d, _ := c.ev.Access(&a) // an error is a policy_error deny, as serve answers it
	return Outcome{Effect: string(d.Effect), Reason: d.Reason}, nil
}

// object decodes raw, the member what, which must be a JSON object, as
// serve decoded it from the request; nil for {}. The object is the
// worker's, shared with the other lines that hold the same text: the
// policy only reads it.
func (sc *scratch) object(what string, raw jsontext.Value) (map[string]any, error) {
	if raw.Kind() != '{' {
		return nil, fmt.Errorf("%s %.40s: want an object", what, raw)
	}
	if len(raw) <= 2 { // {}
		return nil, nil
	}
	if m, ok := sc.objects[string(raw)]; ok {
		return m, nil
	}
	m, err := sc.decode(what, raw)
	if err != nil {
		return nil, err
	}
	if len(raw) <= maxCachedLen && len(sc.objects) < maxCached {
		if sc.objects == nil {
			sc.objects = map[string]map[string]any{}
		}
		sc.objects[string(raw)] = m
	}
	return m, nil
}

// decode decodes raw, the member what, a JSON object, as serve decoded it
// from the request.
func (sc *scratch) decode(what string, raw jsontext.Value) (map[string]any, error) {
	sc.src = *bytes.NewBuffer(raw)
	sc.dec.Reset(&sc.src)
	v, err := contextValue(&sc.dec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return v.(map[string]any), nil
}

// str returns the content of raw, a JSON string value, as
// decisionlog.String does, from the worker's cache when a line before
// held the same text.
func (sc *scratch) str(raw jsontext.Value) string {
	if s, ok := sc.strs[string(raw)]; ok {
		return s
	}
	s := decisionlog.String(raw)
	if len(raw) <= maxCachedLen && len(sc.strs) < maxCached {
		if sc.strs == nil {
			sc.strs = map[string]string{}
		}
		sc.strs[string(raw)] = s
	}
	return s
}

// A worker keeps the subjects, actions, resources and contexts it decoded,
// by their JSON text: a log holds few distinct ones (its actors, their
// principals and lifetimes), and decoding them again was a fifth of
// replay's time. At most maxCached of each, of at most maxCachedLen bytes,
// so that memory stays bounded whatever the log.
const (
	maxCached    = 4096
	maxCachedLen = 512
)

// access returns the AuthZEN request a decision line records: the
// entities of its authzen member and its context.
func (sc *scratch) access(rec *decisionlog.Record) (policy.Access, error) {
	var a policy.Access
	if rec.AuthZEN.Kind() != '{' {
		return a, fmt.Errorf("authzen %.40s: want an object", rec.AuthZEN)
	}
	// Not kept with the contexts: a batch's id and a line's index make
	// every authzen member's text its own.
	az, err := sc.decode("authzen", rec.AuthZEN)
	if err != nil {
		return a, err
	}
	if a.Context, err = sc.object("context", rec.Context); err != nil {
		return a, err
	}
	entity := func(name string, need ...string) (map[string]any, map[string]any, error) {
		e, ok := az[name].(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("authzen.%s: want an object", name)
		}
		for _, m := range need {
			if s, ok := e[m].(string); !ok || s == "" {
				return nil, nil, fmt.Errorf("authzen.%s.%s: want a non-empty string", name, m)
			}
		}
		props, ok := e["properties"].(map[string]any)
		if !ok && e["properties"] != nil {
			return nil, nil, fmt.Errorf("authzen.%s.properties: want an object", name)
		}
		return e, props, nil
	}
	sub, subProps, err := entity("subject", "type", "id")
	if err != nil {
		return a, err
	}
	act, actProps, err := entity("action", "name")
	if err != nil {
		return a, err
	}
	res, resProps, err := entity("resource", "type", "id")
	if err != nil {
		return a, err
	}
	a.Subject = policy.Entity{Type: sub["type"].(string), ID: sub["id"].(string), Properties: subProps}
	a.Action = policy.Action{Name: act["name"].(string), Properties: actProps}
	a.Resource = policy.Entity{Type: res["type"].(string), ID: res["id"].(string), Properties: resProps}
	return a, nil
}

// contextValue decodes a logged context the way serve decoded it from
// the request: numbers written as integers (no fraction, no exponent)
// that fit are int64, other numbers float64. The log keeps numbers and
// strings as the client wrote them, so the request decides again as it
// decided then.
func contextValue(dec *jsontext.Decoder) (any, error) {
	switch dec.PeekKind() {
	case '{':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		m := map[string]any{}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			key := name.String()
			if m[key], err = contextValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.ReadToken()
		return m, err
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := contextValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.ReadToken()
		return a, err
	case '0':
		lit, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		if bytes.IndexAny(lit, ".eE") < 0 {
			if n, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
				return n, nil
			}
		}
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s is out of range", lit)
		}
		return f, nil
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '"':
		return tok.String(), nil
	case 't', 'f':
		return tok.Bool(), nil
	}
	return nil, nil
}
