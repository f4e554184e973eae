package client

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/registry"
)

// The answers are read member by member with jsontext rather than
// unmarshaled into a struct, so that each member is checked, and named in
// the error, in the order of the contract. jsontext is strict: a member
// counts only under its exact name, a duplicate name (as decoded, at any
// level) is an error, and so is anything after the object, so that
// {"effect":"deny","effect":"allow"} is never read as an allow.

// object is one JSON object's members by exact name.
type object struct {
	path    string // "" for the answer itself, "grant" for a member
	members map[string]jsontext.Value
}

func parseObject(path string, data []byte) (object, error) {
	o := object{path: path, members: make(map[string]jsontext.Value)}
	dec := jsontext.NewDecoder(bytes.NewBuffer(data))
	v, err := dec.ReadValue()
	if err != nil {
		var se *jsontext.SyntacticError
		if errors.As(err, &se) && se.Err == jsontext.ErrDuplicateName {
			return o, o.errorf(strings.Join(slices.Collect(se.JSONPointer.Tokens()), "."), "appears twice")
		}
		return o, o.errorf("", "not JSON: %v", err)
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 {
		return o, o.errorf("", "data after the JSON object")
	}
	if v.Kind() != '{' {
		return o, o.errorf("", "want a JSON object, got %s", describe(v))
	}
	err = json.Unmarshal(v, &o.members) // checked above: this cannot fail
	return o, err
}

func (o object) name(member string) string {
	switch {
	case o.path == "":
		return member
	case member == "":
		return o.path
	}
	return o.path + "." + member
}

func (o object) errorf(member, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if n := o.name(member); n != "" {
		msg = n + ": " + msg
	}
	return errors.New(msg)
}

// raw returns a member's value, or nil when it is absent or null.
func (o object) raw(member string) jsontext.Value {
	v := o.members[member]
	if v.Kind() == 'n' {
		return nil
	}
	return v
}

// str returns a required, non-empty string member.
func (o object) str(member string) (string, error) {
	s, ok, err := o.optStr(member)
	if err == nil && (!ok || s == "") {
		err = o.errorf(member, "missing")
	}
	return s, err
}

// optStr returns a string member that may be absent or null.
func (o object) optStr(member string) (string, bool, error) {
	v := o.raw(member)
	if v == nil {
		return "", false, nil
	}
	if v.Kind() != '"' {
		return "", false, o.errorf(member, "want a string, got %s", v)
	}
	s, _ := jsontext.AppendUnquote(nil, v) // checked by parseObject
	return string(s), true, nil
}

// integer returns a required integer member; 24.0 and "24" are not integers.
func (o object) integer(member string) (int, error) {
	v := o.raw(member)
	if v == nil {
		return 0, o.errorf(member, "missing")
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, o.errorf(member, "want an integer, got %s", v)
	}
	return n, nil
}

// obj returns an object member; ok is false when it is absent or null.
func (o object) obj(member string) (sub object, ok bool, err error) {
	v := o.raw(member)
	if v == nil {
		return sub, false, nil
	}
	sub, err = parseObject(o.name(member), v)
	return sub, err == nil, err
}

// timestamp returns an RFC 3339 time member; ok is false when it is absent
// or null.
func (o object) timestamp(member string) (t time.Time, ok bool, err error) {
	s, ok, err := o.optStr(member)
	if err != nil || !ok {
		return t, false, err
	}
	t, err = time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, false, o.errorf(member, "want an RFC 3339 time, got %q", s)
	}
	return t, true, nil
}

// describe names a value that is not an object, for messages.
func describe(v jsontext.Value) string {
	switch v.Kind() {
	case '[':
		return "an array"
	case '"':
		s, _ := jsontext.AppendUnquote(nil, v)
		return strconv.Quote(string(s))
	}
	return string(v)
}

// A member is one string member of a decision and its check.
type member struct {
	name  string
	dst   *string
	check func(string) error
}

// members returns the members of d other than the grant.
func (d *Decision) members() []member {
	return []member{
		{"decision_id", &d.ID, checkDecisionID},
		{"effect", &d.Effect, checkEffect},
		{"reason", &d.Reason, checkReason},
		{"policy", &d.Policy, registry.CheckPackageName},
		{"policy_digest", &d.PolicyDigest, checkDigest},
		{"registry_digest", &d.RegistryDigest, checkDigest},
	}
}

// Check checks the members of d other than the grant, as an answer is
// checked: what a decision answer and a decision log line have in common.
// The error names the first member that is not well formed.
func (d *Decision) Check() error {
	for _, m := range d.members() {
		if err := m.check(*m.dst); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}

// parseDecision decodes and checks a decision envelope.
func parseDecision(data []byte) (*Decision, error) {
	o, err := parseObject("", data)
	if err != nil {
		return nil, err
	}
	d := new(Decision)
	for _, m := range d.members() {
		if *m.dst, err = o.str(m.name); err != nil {
			return nil, err
		}
		if err := m.check(*m.dst); err != nil {
			return nil, o.errorf(m.name, "%v", err)
		}
	}
	g, ok, err := o.obj("grant")
	switch {
	case err != nil:
		return nil, err
	case ok && !d.Allowed():
		return nil, o.errorf("grant", "present on a deny")
	case !ok && d.Allowed():
		return nil, o.errorf("grant", "missing on an allow")
	case ok:
		d.Grant = new(Grant)
		if d.Grant.Principal, err = g.str("principal"); err != nil {
			return nil, err
		}
		if err := registry.CheckPrincipal(d.Grant.Principal); err != nil {
			return nil, g.errorf("principal", "%v", err)
		}
		if d.Grant.TTLHours, err = g.integer("ttl_hours"); err != nil {
			return nil, err
		}
		if err := registry.CheckTTL(int64(d.Grant.TTLHours)); err != nil {
			return nil, g.errorf("ttl_hours", "%v", err)
		}
	}
	return d, nil
}

// parseHealth decodes and checks a /healthz answer.
func parseHealth(data []byte) (*Health, error) {
	o, err := parseObject("", data)
	if err != nil {
		return nil, err
	}
	h := new(Health)
	if h.Status, err = o.str("status"); err != nil {
		return nil, err
	}
	if h.Status != "ok" && h.Status != "degraded" {
		return nil, o.errorf("status", `want "ok" or "degraded", got %q`, h.Status)
	}
	reg, err := required(o, "registry")
	if err != nil {
		return nil, err
	}
	if h.Registry.Digest, err = reg.str("digest"); err != nil {
		return nil, err
	}
	if err := checkDigest(h.Registry.Digest); err != nil {
		return nil, reg.errorf("digest", "%v", err)
	}
	if h.Registry.Actors, err = reg.integer("actors"); err != nil {
		return nil, err
	}
	if h.Registry.Actors < 0 {
		return nil, reg.errorf("actors", "negative count %d", h.Registry.Actors)
	}
	var ok bool
	if h.Registry.LoadedAt, ok, err = reg.timestamp("loaded_at"); err != nil {
		return nil, err
	} else if !ok {
		return nil, reg.errorf("loaded_at", "missing")
	}
	pol, err := required(o, "policy")
	if err != nil {
		return nil, err
	}
	if h.Policy.Package, err = pol.str("package"); err != nil {
		return nil, err
	}
	if h.Policy.Digest, err = pol.str("digest"); err != nil {
		return nil, err
	}
	if err := checkDigest(h.Policy.Digest); err != nil {
		return nil, pol.errorf("digest", "%v", err)
	}
	rel, err := required(o, "reload")
	if err != nil {
		return nil, err
	}
	if s, ok, err := rel.optStr("last_error"); err != nil {
		return nil, err
	} else if ok {
		h.Reload.LastError = &s
	}
	if t, ok, err := rel.timestamp("last_attempt_at"); err != nil {
		return nil, err
	} else if ok {
		h.Reload.LastAttemptAt = &t
	}
	return h, nil
}

func required(o object, member string) (object, error) {
	sub, ok, err := o.obj(member)
	if err == nil && !ok {
		err = o.errorf(member, "missing")
	}
	return sub, err
}

func checkDecisionID(id string) error {
	const prefix = "decision:"
	if len(id) != len(prefix)+16 || id[:len(prefix)] != prefix || !isLowerHex(id[len(prefix):]) {
		return fmt.Errorf(`want "decision:" and 16 lowercase hex digits, got %q`, id)
	}
	return nil
}

func checkEffect(e string) error {
	if e != Allow && e != Deny {
		return fmt.Errorf(`want "allow" or "deny", got %q`, e)
	}
	return nil
}

func checkReason(r string) error {
	ok := r != "" && 'a' <= r[0] && r[0] <= 'z'
	for i := 1; ok && i < len(r); i++ {
		c := r[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_'
	}
	if !ok {
		return fmt.Errorf("want a reason matching ^[a-z][a-z0-9_]*$, got %q", r)
	}
	return nil
}

func checkDigest(d string) error {
	const prefix = "sha256:"
	if len(d) != len(prefix)+64 || d[:len(prefix)] != prefix || !isLowerHex(d[len(prefix):]) {
		return fmt.Errorf(`want "sha256:" and 64 lowercase hex digits, got %q`, d)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
