package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coulomb/flex-auth/internal/yamlerr"

	"github.com/coulomb/flex-auth/internal/suggest"
	"github.com/coulomb/flex-auth/registry"
	"gopkg.in/yaml.v3"
)

// YAML tags as yaml.v3 resolves them.
const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagBool  = "!!bool"
	tagNull  = "!!null"
	tagMerge = "!!merge"
)

// The keys each mapping understands, by the index fields gives their
// nodes at.
const (
	topVersion = iota
	topDefaults
	topActors
)

var topKeys = [...]string{topVersion: "version", topDefaults: "defaults", topActors: "actors"}

const (
	typePrincipal = iota
	typeTTL
	typeMaxTTL
)

var typeKeys = [...]string{typePrincipal: "principal", typeTTL: "ttl_hours", typeMaxTTL: "max_ttl_hours"}

const (
	actorType = iota
	actorPrincipal
	actorTTL
	actorMaxTTL
	actorSubjects
	actorDescription
	actorDisabled
)

var actorKeys = [...]string{
	actorType:        "type",
	actorPrincipal:   "principal",
	actorTTL:         "ttl_hours",
	actorMaxTTL:      "max_ttl_hours",
	actorSubjects:    "subjects",
	actorDescription: "description",
	actorDisabled:    "disabled",
}

// defaultsKeys are the actor types, indexed like registry.Types.
var defaultsKeys = registry.Types

// Parse parses and validates the inventory in data. file names it in
// errors. The error, when not nil, is Errors: every problem in the file,
// sorted by position.
func Parse(file string, data []byte) (*Inventory, error) {
	return parse(file, data, chunkSize)
}

// parse parses data in parts of about chunk bytes when it can (chunk.go),
// else as one document, which gives the same result, only slower.
func parse(file string, data []byte, chunk int) (*Inventory, error) {
	if plan := planChunks(data, chunk); plan != nil {
		p := newParser(file, data)
		if inv, ok := p.parseChunks(plan); ok {
			return p.result(inv)
		}
	}
	p := newParser(file, data)
	return p.result(p.parse(data))
}

func newParser(file string, data []byte) *parser {
	return &parser{file: file, budget: 1<<20 + 2*len(data)}
}

func (p *parser) result(inv *Inventory) (*Inventory, error) {
	if len(p.errs) > 0 {
		return nil, sortErrors(p.errs)
	}
	return inv, nil
}

type parser struct {
	file string
	errs Errors
	// off is added to the line numbers of the nodes being looked at: the
	// line before the chunk they were parsed from (see chunk.go).
	off int
	// visits counts the nodes looked at; budget bounds it, so that aliases
	// cannot make a small file expand into an enormous one. exhausted is
	// set once the budget is spent, and ends the walk.
	visits, budget int
	exhausted      bool
	// plan, when set, says that the actors come in chunks, parsed apart
	// from the rest; chunksDone is set once they all have been looked at
	// and nothing made them differ from the one-document parse.
	plan       *plan
	chunksDone bool

	slab slab
}

// scope says where a problem is, for the front of its message: the top
// level, defaults, defaults.<type>, or an actor.
type scope struct {
	kind int
	name string
}

const (
	inTop = iota
	inDefaults
	inTypeDefaults
	inActors
	inActor
)

func (s scope) String() string {
	switch s.kind {
	case inDefaults:
		return "defaults"
	case inTypeDefaults:
		return "defaults." + s.name
	case inActors:
		return "actors"
	case inActor:
		return "actor " + strconv.Quote(s.name)
	}
	return ""
}

// line returns the line of n in the file.
func (p *parser) line(n *yaml.Node) int { return n.Line + p.off }

// keyLine is the line of key k, or 0 when there is none.
func (p *parser) keyLine(k *yaml.Node) int {
	if k == nil {
		return 0
	}
	return p.line(k)
}

func (p *parser) errorAt(line, col int, s scope, msg string) {
	if w := s.String(); w != "" {
		msg = w + ": " + msg
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: msg})
}

func (p *parser) errorf(n *yaml.Node, s scope, format string, args ...any) {
	p.errorAt(p.line(n), n.Column, s, fmt.Sprintf(format, args...))
}

// resolve follows aliases to the node they stand for, and counts the node
// against the budget.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	p.visits++
	if p.visits > p.budget && !p.exhausted {
		p.exhausted = true
		p.errorf(n, scope{}, "aliases expand this inventory to more than %d nodes; refusing to go on (an alias bomb?)", p.budget)
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (p *parser) parse(data []byte) *Inventory {
	data = directive12(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			p.errorAt(1, 1, scope{}, "empty inventory; want a mapping with version and actors")
		} else {
			p.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.errorf(&next, scope{}, "a second YAML document; an inventory is a single document")
		return nil
	case err != io.EOF:
		p.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) != 1 {
		p.errorf(&doc, scope{}, "empty inventory; want a mapping with version and actors")
		return nil
	}
	if hasBadEscape(data) {
		p.checkEscapes(data, &doc)
	}
	return p.inventory(doc.Content[0])
}

// syntaxError reports a YAML syntax error. yaml.v3 says "yaml: line N:
// message" and gives no column; it leaves the line out when the problem is
// on the first line, or is in the encoding, which this finds itself.
func (p *parser) syntaxError(data []byte, err error) {
	line, msg, ok := yamlerr.Line(err)
	if !ok {
		if l, c, bad, found := badChar(data); found {
			p.errorAt(l, c, scope{}, bad)
			return
		}
		if name, found := strings.CutPrefix(msg, "unknown anchor '"); found {
			// yaml.v3 gives no line for this one; find the alias.
			name, _, _ = strings.Cut(name, "'")
			line, col := findAlias(data, name)
			p.errorAt(line, col, scope{}, "invalid YAML: "+msg)
			return
		}
		line = 1
	}
	line, col, msg := hint(data, line, msg)
	p.errorAt(line, col, scope{}, "invalid YAML: "+msg)
}

// findAlias returns the position of the first "*name" in data that can be
// an alias, or 1:1.
func findAlias(data []byte, name string) (line, col int) {
	alias := []byte("*" + name)
	for off := 0; ; {
		i := bytes.Index(data[off:], alias)
		if i < 0 {
			return 1, 1
		}
		i += off
		end := i + len(alias)
		if end == len(data) || bytes.IndexByte([]byte(" \t\n\r,]}"), data[end]) >= 0 {
			start := bytes.LastIndexByte(data[:i], '\n') + 1
			return 1 + bytes.Count(data[:i], []byte{'\n'}), 1 + utf8.RuneCount(data[start:i])
		}
		off = end
	}
}

// badChar finds the first byte sequence YAML does not allow in a UTF-8
// stream: invalid UTF-8, or a control character other than tab, line feed
// and carriage return.
func badChar(data []byte) (line, col int, msg string, ok bool) {
	line, col = 1, 1
	data, _ = bytes.CutPrefix(data, []byte("\uFEFF"))
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && size == 1:
			return line, col, fmt.Sprintf("invalid UTF-8 (byte 0x%02x); an inventory is UTF-8 text", data[0]), true
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r' || r == 0x85:
		case r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 || r == 0xfffe || r == 0xffff:
			return line, col, fmt.Sprintf("control character %U is not allowed in YAML", r), true
		}
		col++
		data = data[size:]
	}
	return 0, 0, "", false
}

// describe names a node's kind and value for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	switch tag := tagOf(n); tag {
	case tagStr:
		return "string " + strconv.Quote(v)
	case tagInt:
		return "integer " + v
	case tagBool:
		return "boolean " + v
	case tagNull:
		return "null"
	case tagFloat:
		return "float " + v
	default:
		return tag + " " + strconv.Quote(v)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == tagNull }

// isExtension reports whether key is an x- key, which the inventory ignores
// at every level.
func isExtension(key string) bool { return strings.HasPrefix(key, "x-") }

const secretMsg = "key %q looks like key material; credentials never belong in the inventory (flex-auth never receives SSH private keys or Vault tokens): remove it, and rotate the credential if it was real"

// key returns the text of mapping key k, written at at (k itself, or an
// alias of it), or false after reporting a key that is not a scalar.
func (p *parser) key(at, k *yaml.Node, s scope) (string, bool) {
	switch {
	case k.Kind != yaml.ScalarNode:
		p.errorf(at, s, "want a string key, got %s", describe(k))
		return "", false
	case k.Tag == tagMerge:
		p.errorf(at, s, "merge keys (<<) are not supported (they are not YAML 1.2); write the settings out, or use defaults")
		return "", false
	}
	return k.Value, true
}

// fields reads the members of mapping n into vals: vals[i] is the value
// of known[i] and keys[i] its key as written, nil when absent. It reports
// non-scalar, duplicate, secret-looking and unknown keys, and skips x- keys
// after checking their values. Keys are compared as YAML values (keys.go);
// a problem with a key written as an alias is reported at the alias.
func (p *parser) fields(n *yaml.Node, s scope, known []string, keys, vals []*yaml.Node) {
	// others holds the keys that are not known, to find their duplicates;
	// a mapping has few, unless it is garbage.
	var others map[string]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		at := n.Content[i]
		k := p.resolve(at)
		key, ok := p.key(at, k, s)
		if !ok {
			continue
		}
		if j := slices.Index(known, key); j >= 0 && isText(k) {
			if keys[j] != nil {
				p.errorf(at, s, "duplicate key %q (first at line %d)", key, p.line(keys[j]))
				continue
			}
			keys[j], vals[j] = at, n.Content[i+1]
			continue
		}
		id := keyID(k)
		if first := others[id]; first != nil {
			p.errorf(at, s, "%s", duplicateKey(k, p.line(first)))
			continue
		}
		if others == nil {
			others = make(map[string]*yaml.Node)
		}
		others[id] = at
		switch {
		case registry.LooksSecret(key):
			p.errorf(at, s, secretMsg, key)
		case isExtension(key):
			p.ignored(n.Content[i+1])
		default:
			p.unknownKey(at, s, key, known)
		}
	}
}

func (p *parser) unknownKey(k *yaml.Node, s scope, key string, known []string) {
	switch {
	case s.kind == inTop && registry.CheckName(key) == nil:
		p.errorf(k, s, "unknown key %q (actors go under \"actors\")", key)
	case s.kind == inDefaults:
		p.errorf(k, s, "unknown key %q (only adm, agt and atm may have defaults)", key)
	default:
		if hint := suggest.Closest(key, known); hint != "" {
			p.errorf(k, s, "unknown key %q (did you mean %q?)", key, hint)
		} else {
			p.errorf(k, s, "unknown key %q (want one of %s)", key, strings.Join(known, ", "))
		}
	}
}

// ignored checks a value the inventory otherwise ignores (under an x- key)
// for what is an error anywhere: duplicate keys and credentials. It does
// not follow aliases: what they name is checked where it is defined.
func (p *parser) ignored(n *yaml.Node) {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			p.ignored(c)
		}
	case yaml.MappingNode:
		var seen map[string]*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			at := n.Content[i]
			p.ignored(at)
			p.ignored(n.Content[i+1])
			k := at
			for k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if seen == nil {
				seen = make(map[string]*yaml.Node)
			}
			id := keyID(k)
			if first := seen[id]; first != nil {
				p.errorf(at, scope{}, "%s", duplicateKey(k, p.line(first)))
				continue
			}
			seen[id] = at
			if k.Kind == yaml.ScalarNode && registry.LooksSecret(k.Value) {
				p.errorf(at, scope{}, secretMsg, k.Value)
			}
		}
	}
}

// str reads a string value; it reports anything else and returns false.
func (p *parser) str(n *yaml.Node, s scope, field string) (string, bool) {
	v := p.resolve(n)
	if v.Kind != yaml.ScalarNode || tagOf(v) != tagStr {
		p.errorf(n, s, "%s: want a string, got %s", field, describe(v))
		return "", false
	}
	return v.Value, true
}

// hours reads a TTL: a YAML integer (not a string, float or boolean) in
// 1..8760. It reports a bad value and returns 0.
func (p *parser) hours(n *yaml.Node, s scope, field string) int {
	v := p.resolve(n)
	if v.Kind != yaml.ScalarNode || tagOf(v) != tagInt {
		p.errorf(n, s, "%s: want an integer from %d to %d, got %s%s", field, registry.MinTTLHours, registry.MaxTTLHours, describe(v), yaml11Int(v))
		return 0
	}
	h, ok := smallDecimal(v.Value)
	if !ok {
		digits := strings.TrimLeft(v.Value, "+-")
		if len(digits) > 1 && digits[0] == '0' && '0' <= digits[1] && digits[1] <= '9' {
			p.errorf(n, s, "%s: %s has a leading zero, which YAML 1.1 reads as octal and YAML 1.2 as decimal; write it without", field, v.Value)
			return 0
		}
		canon := canonical(tagInt, v.Value)
		wide, err := strconv.ParseInt(canon, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			p.errorf(n, s, "%s: want an integer from %d to %d, got %s", field, registry.MinTTLHours, registry.MaxTTLHours, describe(v))
			return 0
		}
		if err != nil {
			p.errorf(n, s, "%s: must be between %d and %d, got %s", field, registry.MinTTLHours, registry.MaxTTLHours, canon)
			return 0
		}
		h = wide
	}
	if err := registry.CheckTTL(h); err != nil {
		p.errorf(n, s, "%s: %v", field, err)
		return 0
	}
	return int(h)
}

// yaml11Int returns a note for a scalar that yaml.v3 reads as an integer
// and YAML 1.2 as a string (1_000, 0b101), or "".
func yaml11Int(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode && v.Tag == tagInt && tagOf(v) == tagStr {
		return " (an integer in YAML 1.1, not in YAML 1.2)"
	}
	return ""
}

// smallDecimal parses the common spelling of a TTL, a few decimal digits
// without a leading zero, without yaml.v3's reflection.
func smallDecimal(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 9 || s[0] == '0' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// boolean reads a YAML boolean.
func (p *parser) boolean(n *yaml.Node, s scope, field string) (val, ok bool) {
	v := p.resolve(n)
	if v.Kind == yaml.ScalarNode && tagOf(v) == tagBool {
		switch canonical(tagBool, v.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	p.errorf(n, s, "%s: want true or false, got %s", field, describe(v))
	return false, false
}

// mapping resolves n and reports whether it is a mapping; null counts as
// an empty mapping, since "agt-x:" with nothing after it means no settings.
func (p *parser) mapping(n *yaml.Node, s scope, field, want string) (*yaml.Node, bool) {
	v := p.resolve(n)
	if v.Kind == yaml.MappingNode || isNull(v) {
		return v, true
	}
	if field != "" {
		field += ": "
	}
	p.errorf(n, s, "%swant %s, got %s", field, want, describe(v))
	return nil, false
}

func (p *parser) inventory(root *yaml.Node) *Inventory {
	n := p.resolve(root)
	if n.Kind != yaml.MappingNode {
		p.errorf(root, scope{}, "want a mapping with version and actors at the top of the inventory, got %s", describe(n))
		return nil
	}
	var keys, vals [len(topKeys)]*yaml.Node
	p.fields(n, scope{}, topKeys[:], keys[:], vals[:])

	if vals[topVersion] == nil {
		p.errorf(n, scope{}, "missing version (want \"version: %d\")", Version)
	} else if v := p.resolve(vals[topVersion]); v.Kind != yaml.ScalarNode || tagOf(v) != tagInt {
		p.errorf(vals[topVersion], scope{}, "version: want the integer %d, got %s%s", Version, describe(v), yaml11Int(v))
	} else if canonical(tagInt, v.Value) != strconv.Itoa(Version) {
		p.errorf(vals[topVersion], scope{}, "unsupported version %s; this flex-auth understands version %d", v.Value, Version)
	}

	var d defaults
	if vals[topDefaults] != nil {
		p.defaults(vals[topDefaults], &d)
	}
	if vals[topActors] == nil {
		p.errorf(n, scope{}, "missing actors (want a mapping of actor names to their settings)")
		return nil
	}
	if p.plan != nil {
		return p.chunkedActors(keys[topActors], vals[topActors], &d)
	}
	return p.actors(keys[topActors], vals[topActors], &d)
}

// A typeDefault is one actor type's defaults. A value that is set but
// invalid has been reported; its "bad" flag keeps actors that would inherit
// it from reporting the same problem again.
type typeDefault struct {
	principal                       string
	ttl, maxTTL                     int
	badPrincipal, badTTL, badMaxTTL bool
}

type defaults [3]typeDefault // indexed like registry.Types

func typeIndex(t string) int {
	switch t {
	case registry.Types[0]:
		return 0
	case registry.Types[1]:
		return 1
	case registry.Types[2]:
		return 2
	}
	return -1
}

func (p *parser) defaults(n *yaml.Node, d *defaults) {
	m, ok := p.mapping(n, scope{}, "defaults", "a mapping of actor types (adm, agt, atm) to settings")
	if !ok || isNull(m) {
		return
	}
	var keys, vals [3]*yaml.Node
	p.fields(m, scope{kind: inDefaults}, defaultsKeys, keys[:], vals[:])
	for t, v := range vals {
		if v == nil {
			continue
		}
		s := scope{kind: inTypeDefaults, name: registry.Types[t]}
		tm, ok := p.mapping(v, scope{kind: inDefaults}, registry.Types[t], "a mapping of settings")
		if !ok || isNull(tm) {
			continue
		}
		var tk, tv [len(typeKeys)]*yaml.Node
		p.fields(tm, s, typeKeys[:], tk[:], tv[:])
		td := &d[t]
		if tv[typePrincipal] != nil {
			pr, ok := p.str(tv[typePrincipal], s, "principal")
			if ok {
				if err := registry.CheckPrincipal(pr); err != nil {
					p.errorf(tv[typePrincipal], s, "%v", err)
					ok = false
				}
			}
			td.principal, td.badPrincipal = pr, !ok
		}
		if tv[typeTTL] != nil {
			td.ttl = p.hours(tv[typeTTL], s, "ttl_hours")
			td.badTTL = td.ttl == 0
		}
		if tv[typeMaxTTL] != nil {
			td.maxTTL = p.hours(tv[typeMaxTTL], s, "max_ttl_hours")
			td.badMaxTTL = td.maxTTL == 0
		}
		if td.ttl > 0 && td.maxTTL > 0 && td.ttl > td.maxTTL {
			p.errorf(tv[typeTTL], s, "ttl_hours %d is above max_ttl_hours %d", td.ttl, td.maxTTL)
			td.badTTL, td.badMaxTTL = true, true
		}
	}
}

// A state is what the parser keeps about an actor beside its Actor.
type state struct {
	// valid reports whether the name is valid; only then can it be
	// claimed as a subject.
	valid    bool
	disabled bool
	// text is false for an actor whose name is a key that is not text (a
	// number, a boolean, null): its duplicates are found by value, as the
	// actors come, not by name.
	text bool
	// extra is the sequence of extra subjects, checked against the other
	// actors' identities once all names are known; off is the line offset
	// of the chunk it came from.
	extra *yaml.Node
	off   int32
}

func (p *parser) actors(key, n *yaml.Node, d *defaults) *Inventory {
	m, ok := p.mapping(n, scope{}, "actors", "a mapping of actor names to their settings")
	if !ok {
		return nil
	}
	b := newBuilder(len(m.Content) / 2)
	p.entries(b, m, d)
	return p.finish(key, b)
}

// A builder collects the actors of the actors mapping, which may come in
// several parts (chunk.go), in file order.
type builder struct {
	actors []Actor
	states []state
	// others holds the line of the first actor of each key that is not
	// text, by value.
	others map[string]int
}

func newBuilder(n int) *builder {
	return &builder{actors: make([]Actor, 0, n), states: make([]state, 0, n)}
}

// entries adds the actors of mapping m to b.
func (p *parser) entries(b *builder, m *yaml.Node, d *defaults) {
	for i := 0; i+1 < len(m.Content) && !p.exhausted; i += 2 {
		at := m.Content[i]
		k := p.resolve(at)
		name, ok := p.key(at, k, scope{kind: inActors})
		if !ok {
			continue
		}
		if isExtension(name) {
			if registry.LooksSecret(name) {
				p.errorf(at, scope{kind: inActors}, secretMsg, name)
			}
			p.ignored(m.Content[i+1])
			continue
		}
		b.actors = append(b.actors, Actor{Name: name, Line: p.line(at), Col: at.Column})
		b.states = append(b.states, state{valid: true, text: true, off: int32(p.off)})
		a, st := &b.actors[len(b.actors)-1], &b.states[len(b.states)-1]
		if err := registry.CheckName(name); err != nil {
			st.valid = false
			if registry.LooksSecret(name) {
				p.errorf(at, scope{}, secretMsg, name)
			} else {
				p.errorf(at, scope{}, "%v", err)
			}
		}
		if !isText(k) {
			// Never a valid name, so reported above; a duplicate too.
			st.text = false
			p.otherActor(b, a, k)
		}
		p.actor(a, st, at, m.Content[i+1], d)
	}
}

// otherActor reports actor a, whose key k is not text, when an earlier
// actor's key has the same value.
func (p *parser) otherActor(b *builder, a *Actor, k *yaml.Node) {
	id, value := keyID(k), valueName(k)
	if first, dup := b.others[id]; dup {
		p.errorAt(a.Line, a.Col, scope{kind: inActors}, fmt.Sprintf("duplicate actor %q (%s, first at line %d)", a.Name, value, first))
		return
	}
	if b.others == nil {
		b.others = make(map[string]int)
	}
	b.others[id] = a.Line
}

// finish checks what needs every actor known, and returns the inventory.
// key is the "actors" key.
//
// Duplicate names are found by sorting rather than with a map as the
// actors come: the names must be sorted anyway, and at 100,000 actors a
// map costs more than the sort.
func (p *parser) finish(key *yaml.Node, b *builder) *Inventory {
	if p.exhausted {
		return nil
	}
	actors, states := b.actors, b.states
	names := sortNames(actors)
	// Actors of one name are together, in file order; only text keys are
	// compared by name (otherActor has compared the others).
	for lo := 0; lo < len(names); {
		hi := lo + 1
		for hi < len(names) && names[hi].name == names[lo].name {
			hi++
		}
		first := int32(-1)
		for _, n := range names[lo:hi] {
			switch {
			case hi-lo == 1 || !states[n.i].text:
			case first < 0:
				first = n.i
			default:
				a := &actors[n.i]
				p.errorAt(a.Line, a.Col, scope{kind: inActors}, fmt.Sprintf("duplicate actor %q (first at line %d)", a.Name, actors[first].Line))
				states[n.i].valid = false
			}
		}
		lo = hi
	}

	enabled := 0
	for i := range states {
		if !states[i].disabled {
			enabled++
		}
		if states[i].extra != nil {
			p.off = int(states[i].off)
			p.claims(int32(i), actors, states, names)
			p.off = 0
		}
	}
	if enabled == 0 {
		p.errorf(key, scope{}, "no enabled actor in actors; a registry needs at least one")
	}
	if len(p.errs) > 0 {
		return nil
	}

	// Put the actors in name order where they are, then close the gaps of
	// the disabled ones: at 100,000 actors, a sorted copy costs more.
	inv := &Inventory{File: p.file, ActorsLine: p.line(key)}
	disabled := make([]bool, len(names))
	perm := make([]int32, len(names))
	for k, n := range names {
		disabled[k], perm[k] = states[n.i].disabled, n.i
		if disabled[k] {
			inv.Disabled = append(inv.Disabled, actors[n.i])
		}
	}
	permute(actors, perm)
	kept := actors[:0]
	for k := range actors {
		if !disabled[k] {
			kept = append(kept, actors[k])
		}
	}
	clear(actors[len(kept):])
	inv.Actors = kept
	return inv
}

// permute reorders actors so that actors[k] is the old actors[perm[k]],
// moving each actor once by following the cycles of the permutation. It
// uses up perm.
func permute(actors []Actor, perm []int32) {
	for i := range perm {
		if perm[i] == int32(i) {
			continue
		}
		tmp := actors[i]
		j := int32(i)
		for {
			k := perm[j]
			perm[j] = j // done
			if k == int32(i) {
				actors[j] = tmp
				break
			}
			actors[j] = actors[k]
			j = k
		}
	}
}

// claims reports extra subjects of actor i that are another actor's name
// or iam: form: such a binding would let one actor sign as another.
func (p *parser) claims(i int32, actors []Actor, states []state, names []sortedName) {
	name := actors[i].Name
	for _, sn := range states[i].extra.Content {
		v := sn
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode || tagOf(v) != tagStr {
			continue // reported already
		}
		other, ok := lookup(names, v.Value)
		if !ok {
			if n, iam := strings.CutPrefix(v.Value, "iam:"); iam {
				other, ok = lookup(names, n)
			}
		}
		if !ok || actors[other].Name == name || !states[other].valid {
			continue
		}
		note := ""
		if states[other].disabled {
			note = " (a disabled actor keeps its identities reserved)"
		}
		o := actors[other].Name
		p.errorf(sn, scope{kind: inActor, name: name}, "subject %q is actor %q's identity; binding it here would let %q sign as %q%s",
			v.Value, o, name, o, note)
	}
}

// actor parses one actor's settings into e, resolving what the actor
// leaves out from its type's defaults.
func (p *parser) actor(e *Actor, st *state, k, n *yaml.Node, d *defaults) {
	s := scope{kind: inActor, name: e.Name}
	m, ok := p.mapping(n, s, "", "a mapping of settings")
	if !ok {
		return
	}
	var keys, vals [len(actorKeys)]*yaml.Node
	if !isNull(m) {
		p.fields(m, s, actorKeys[:], keys[:], vals[:])
	}

	e.KeyLines = KeyLines{Type: p.keyLine(keys[actorType]), Principal: p.keyLine(keys[actorPrincipal]),
		TTLHours: p.keyLine(keys[actorTTL]), MaxTTLHours: p.keyLine(keys[actorMaxTTL]), Subjects: p.keyLine(keys[actorSubjects])}
	e.Type = registry.TypeOf(e.Name)
	var td typeDefault
	if t := typeIndex(e.Type); t >= 0 {
		td = d[t]
	}
	if v := vals[actorType]; v != nil {
		if t, ok := p.str(v, s, "type"); ok && e.Type != "" && t != e.Type {
			p.errorf(v, s, "type: want %q, the prefix of the actor name, got %q", e.Type, t)
		}
	}
	if v := vals[actorDisabled]; v != nil {
		st.disabled, _ = p.boolean(v, s, "disabled")
	}
	if v := vals[actorDescription]; v != nil {
		// Free text, never copied; any scalar will do.
		if dv := p.resolve(v); dv.Kind != yaml.ScalarNode {
			p.errorf(v, s, "description: want text, got %s", describe(dv))
		}
	}

	// principal: the actor's, else the type's default, else the name.
	switch {
	case vals[actorPrincipal] != nil:
		v := vals[actorPrincipal]
		if pr, ok := p.str(v, s, "principal"); ok {
			if err := registry.CheckPrincipal(pr); err != nil {
				p.errorf(v, s, "%v", err)
			}
			e.Principal = pr
		}
	case td.principal != "" || td.badPrincipal:
		e.Principal = td.principal
	case st.valid:
		if err := registry.CheckPrincipal(e.Name); err != nil {
			p.errorf(k, s, "no principal is set, and the actor name is too long to be one (%d bytes, at most 32); set principal here or in defaults.%s", len(e.Name), e.Type)
		}
		e.Principal = e.Name
	}

	// ttl_hours: the actor's, else the type's default; one is required.
	ttlOwn, maxOwn := vals[actorTTL] != nil, vals[actorMaxTTL] != nil
	badTTL := false
	switch {
	case ttlOwn:
		e.TTLHours = p.hours(vals[actorTTL], s, "ttl_hours")
		badTTL = e.TTLHours == 0
	case td.ttl > 0 || td.badTTL:
		e.TTLHours, badTTL = td.ttl, td.badTTL
	default:
		// Without a type the name is invalid, which says enough.
		if e.Type != "" {
			p.errorf(k, s, "no ttl_hours; set it here or in defaults.%s", e.Type)
		}
		badTTL = true
	}
	// max_ttl_hours: the actor's, else the type's default, else ttl_hours.
	badMax := false
	switch {
	case maxOwn:
		e.MaxTTLHours = p.hours(vals[actorMaxTTL], s, "max_ttl_hours")
		badMax = e.MaxTTLHours == 0
	case td.maxTTL > 0 || td.badMaxTTL:
		e.MaxTTLHours, badMax = td.maxTTL, td.badMaxTTL
	default:
		e.MaxTTLHours, badMax = e.TTLHours, badTTL
	}
	if !badTTL && !badMax && e.TTLHours > e.MaxTTLHours {
		switch {
		case ttlOwn && maxOwn:
			p.errorf(vals[actorTTL], s, "ttl_hours %d is above max_ttl_hours %d", e.TTLHours, e.MaxTTLHours)
		case ttlOwn:
			p.errorf(vals[actorTTL], s, "ttl_hours %d is above max_ttl_hours %d (from defaults.%s)", e.TTLHours, e.MaxTTLHours, e.Type)
		case maxOwn:
			p.errorf(vals[actorMaxTTL], s, "max_ttl_hours %d is below ttl_hours %d (from defaults.%s)", e.MaxTTLHours, e.TTLHours, e.Type)
		}
		// Both from defaults: reported there.
	}

	// subjects: the name, its iam: form, and the extra ones.
	var extra []*yaml.Node
	if v := vals[actorSubjects]; v != nil {
		sv := p.resolve(v)
		switch {
		case sv.Kind == yaml.SequenceNode:
			st.extra, extra = sv, sv.Content
		case !isNull(sv):
			p.errorf(v, s, "subjects: want a sequence of subjects, got %s", describe(sv))
		}
	}
	if st.valid {
		e.Subjects = append(p.slab.subjects(2+len(extra)), e.Name, p.slab.iam(e.Name))
	}
	for _, sn := range extra {
		if p.exhausted {
			return
		}
		sub, ok := p.str(sn, s, "subjects")
		if !ok {
			continue
		}
		if err := registry.CheckSubject(sub); err != nil {
			p.errorf(sn, s, "%v", err)
			continue
		}
		e.Subjects = append(e.Subjects, sub)
	}
	if len(e.Subjects) > 2 {
		slices.Sort(e.Subjects)
		e.Subjects = slices.Compact(e.Subjects)
	}
}
