// Package entities defines the entities document: the data an AuthZEN
// policy package decides over, as people write it. It lists the entities
// the package knows (subjects and resources alike), by type and id, with
// their properties, and the actions it decides:
//
//	schema: flex-auth.entities/v1
//	policy_package: authzen/certification
//	actions: [read, write, delete]
//	entities:
//	  user:
//	    alice: {}
//	    bob: {role: admin}
//	  record:
//	    record-1: {status: active}
//
// Parse reads it strictly, as the registry snapshot is read: unknown,
// missing and duplicate keys, values of the wrong kind, anything JSON
// cannot say, and integers beyond what a JSON number holds exactly are
// errors, every one reported with its line and column. The digest is that
// of the RFC 8785 serialization of the content, so that it names what the
// document says, whatever its layout and order.
package entities

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"gopkg.in/yaml.v3"

	"github.com/coulomb/flex-auth/internal/errlist"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/internal/suggest"
	"github.com/coulomb/flex-auth/internal/yamlerr"
	"github.com/coulomb/flex-auth/internal/yamljson"
	"github.com/coulomb/flex-auth/registry"
)

// Schema is the only entities document schema this version understands.
const Schema = "flex-auth.entities/v1"

// MaxSafeInteger is the largest integer an entities document may hold: the
// largest that every JSON reader holds exactly (I-JSON, RFC 7493 2.2), so
// that the digest, computed over RFC 8785's number form, names the value
// written.
const MaxSafeInteger = yamljson.MaxSafeInteger

// maxErrors bounds how many problems one parse reports.
const maxErrors = 100

// The keys of a document, in the order a "missing key" error lists them.
var (
	requiredKeys = []string{"schema", "policy_package", "entities"}
	knownKeys    = []string{"schema", "policy_package", "actions", "entities"}
)

// An Error is one problem in an entities document, at a line and column
// (both from 1). Msg may quote what the file holds; the redacted form
// does not.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	// redacted is Msg without what the file holds.
	redacted string
}

// Error returns "FILE:LINE:COL: message".
func (e *Error) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col) + ": " + e.Msg
}

// Redacted returns "FILE:LINE:COL: message" without what the file holds:
// the place and the rule broken, for /healthz and serve's log.
func (e *Error) Redacted() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col) + ": " + e.redacted
}

// Errors is every problem found in one document, in the order of the
// file.
type Errors = errlist.List[*Error]

// A Document is a parsed entities document. It is immutable and safe for
// concurrent use; the maps and slices its methods return are its own and
// must not be modified.
type Document struct {
	file          string
	policyPackage string
	actions       []string // sorted, unique
	// data maps each type to a map[string]any of its entities, each id to
	// its properties as a map[string]any (empty, never nil): the value
	// CEL rules read as `data`.
	data map[string]any
	// ids holds each type's ids, sorted.
	ids      map[string][]string
	types    []string // sorted
	entities int
	digest   string
}

// Load reads and parses the entities document at path: a regular file of
// at most readfile.Entities.Max bytes.
func Load(path string) (*Document, error) {
	src, err := readfile.Read(path, readfile.Entities)
	if err != nil {
		return nil, err
	}
	return Parse(path, src)
}

// Parse parses the entities document src, read from file (used in
// messages only). Any problem makes it return Errors.
func Parse(file string, src []byte) (*Document, error) {
	p := &parser{file: file}
	d := p.parse(src)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
		})
		return nil, p.errs
	}
	d.digest = "sha256:" + hex.EncodeToString(sha256Sum(d.Canonical()))
	return d, nil
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// File returns the file name the document was parsed from.
func (d *Document) File() string { return d.file }

// PolicyPackage returns the policy package the document is meant for.
func (d *Document) PolicyPackage() string { return d.policyPackage }

// Digest returns "sha256:" and the lowercase hex SHA-256 of Canonical.
func (d *Document) Digest() string { return d.digest }

// Actions returns the actions the document declares, sorted.
func (d *Document) Actions() []string { return d.actions }

// Types returns the entity types, sorted.
func (d *Document) Types() []string { return d.types }

// Len returns the number of entities, of every type.
func (d *Document) Len() int { return d.entities }

// IDs returns the ids of the entities of type typ, sorted; nil for a type
// the document does not have.
func (d *Document) IDs(typ string) []string { return d.ids[typ] }

// Properties returns the properties of the entity typ/id (empty, not nil,
// for an entity without any) and whether the document has the entity.
func (d *Document) Properties(typ, id string) (map[string]any, bool) {
	byID, ok := d.data[typ].(map[string]any)
	if !ok {
		return nil, false
	}
	props, ok := byID[id].(map[string]any)
	return props, ok
}

// Data returns the entities as one map: type to id to properties, each a
// map[string]any.
func (d *Document) Data() map[string]any { return d.data }

// Canonical returns the RFC 8785 (JCS) serialization of the document's
// content: schema, policy_package, the sorted actions, and the entities.
// Two documents with the same content have the same bytes, whatever their
// layout, order or YAML style.
func (d *Document) Canonical() []byte {
	doc := map[string]any{
		"schema":         Schema,
		"policy_package": d.policyPackage,
		"actions":        d.actions,
		"entities":       d.data,
	}
	b, err := json.Marshal(doc, json.Deterministic(true))
	if err != nil {
		panic("entities: marshal a parsed document: " + err.Error()) // parsed values always marshal
	}
	v := jsontext.Value(b)
	if err := v.Canonicalize(); err != nil {
		panic("entities: canonicalize a parsed document: " + err.Error())
	}
	return v
}

// A parser collects every problem of one document.
type parser struct {
	file string
	errs Errors
}

// errorf reports a problem at node n. Values read from the file are passed
// as redact.Value (or a redact.Text, or an error with a redacted form), so
// that the error's redacted form leaves them out.
func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = max(n.Line, 1), max(n.Column, 1)
	}
	p.errorAt(line, col, format, args...)
}

func (p *parser) errorAt(line, col int, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: "too many errors", redacted: "too many errors"})
	}
	if len(p.errs) > maxErrors {
		return
	}
	msg, redacted := redact.Sprintf(format, args...)
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: msg, redacted: redacted})
}

func (p *parser) parse(src []byte) *Document {
	d := &Document{file: p.file, data: map[string]any{}, ids: map[string][]string{}, actions: []string{}}
	root := p.yamlDoc(src)
	if root == nil {
		return d
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "an entities document must be a mapping with %s, got %s", joinKeys(knownKeys), yamljson.Describe(root))
		return d
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			p.errorf(k, "keys must be strings, got %s", yamljson.Describe(k))
			continue
		}
		if first, dup := fields[k.Value]; dup {
			p.errorf(k, "duplicate key %q (the first is at line %d)", redact.Value(k.Value), keyLine(root, first))
			continue
		}
		if !slices.Contains(knownKeys, k.Value) {
			hint := ""
			if s := suggest.Closest(k.Value, knownKeys); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(k, "unknown key %q%s; the keys are %s", redact.Value(k.Value), hint, joinKeys(knownKeys))
			continue
		}
		fields[k.Value] = v
	}
	for _, k := range requiredKeys {
		if _, ok := fields[k]; !ok {
			p.errorf(root, "missing key %q", k)
		}
	}
	if v, ok := fields["schema"]; ok {
		if s, ok := p.str(v, "schema"); ok && s != Schema {
			p.errorf(v, "schema: want %q, got %q", Schema, redact.Value(s))
		}
	}
	if v, ok := fields["policy_package"]; ok {
		if s, ok := p.str(v, "policy_package"); ok {
			if err := registry.CheckPackageName(s); err != nil {
				p.errorf(v, "policy_package: %v", err)
			} else {
				d.policyPackage = s
			}
		}
	}
	if v, ok := fields["actions"]; ok {
		d.actions = p.actions(v)
	}
	if v, ok := fields["entities"]; ok {
		p.entities(d, v)
	}
	return d
}

// keyLine returns the line of the key whose value is v in mapping m.
func keyLine(m, v *yaml.Node) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i+1] == v {
			return m.Content[i].Line
		}
	}
	return v.Line
}

func joinKeys(keys []string) string {
	var b bytes.Buffer
	for i, k := range keys {
		switch {
		case i == 0:
		case i == len(keys)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(k)
	}
	return b.String()
}

// yamlDoc parses src as one YAML document and returns its root, or nil
// after reporting why there is none.
func (p *parser) yamlDoc(src []byte) (root *yaml.Node) {
	defer func() {
		if e := recover(); e != nil { // yaml.v3 has panicked on hostile input before
			p.errorAt(1, 1, "invalid YAML: %v", redact.Value(e))
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(1, 1, "the document is empty; want %s", joinKeys(requiredKeys))
			return nil
		}
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "more than one YAML document")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
		return nil
	}
	if n := yamljson.FindAlias(&doc); n != nil {
		p.errorf(n, "YAML anchors and aliases are not supported")
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorAt(1, 1, "the document is empty; want %s", joinKeys(requiredKeys))
		return nil
	}
	return doc.Content[0]
}

func (p *parser) yamlError(err error) {
	line, msg, ok := yamlerr.Line(err)
	if !ok {
		line = 1
	}
	p.errorAt(line, 1, "invalid YAML: %s", redact.Value(msg))
}

// str returns the string value of n, a plain string.
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errorf(n, "%s must be a string, got %s", what, yamljson.Describe(n))
		return "", false
	}
	return n.Value, true
}

// actions reads the actions list: non-empty strings, each once.
func (p *parser) actions(n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "actions must be a list of action names, got %s", yamljson.Describe(n))
		return []string{}
	}
	seen := map[string]int{}
	out := make([]string, 0, len(n.Content))
	for i, a := range n.Content {
		what := fmt.Sprintf("actions[%d]", i)
		s, ok := p.str(a, what)
		switch {
		case !ok:
		case s == "":
			p.errorf(a, "%s must not be empty", what)
		case seen[s] != 0:
			p.errorf(a, "%s: duplicate action %q (the first is at line %d)", what, redact.Value(s), seen[s])
		default:
			seen[s] = a.Line
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// entities reads the entities mapping: type to id to properties.
func (p *parser) entities(d *Document, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "entities must be a mapping of entity types to their entities, got %s", yamljson.Describe(n))
		return
	}
	types := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		tk, tv := n.Content[i], n.Content[i+1]
		typ, ok := p.key(types, tk, "entity type", "entities")
		if !ok {
			continue
		}
		what := redact.Pair("entities."+typ, "entities."+redact.Hidden)
		byID := map[string]any{}
		d.data[typ] = byID
		if tv.Kind == yaml.ScalarNode && tv.Tag == "!!null" {
			d.ids[typ] = []string{}
			continue // a type without entities yet
		}
		if tv.Kind != yaml.MappingNode {
			p.errorf(tv, "%s must be a mapping of ids to properties, got %s", what, yamljson.Describe(tv))
			continue
		}
		ids := make([]string, 0, len(tv.Content)/2)
		seen := make(map[string]int, len(tv.Content)/2)
		for j := 0; j+1 < len(tv.Content); j += 2 {
			ik, iv := tv.Content[j], tv.Content[j+1]
			id, ok := p.key(seen, ik, "id", what)
			if !ok {
				continue
			}
			byID[id] = p.properties(iv, redact.Pair(what.String()+"."+id, what.Redacted()+"."+redact.Hidden))
			ids = append(ids, id)
		}
		slices.Sort(ids)
		d.ids[typ] = ids
		d.entities += len(ids)
	}
	d.types = slices.Sorted(maps.Keys(d.ids))
}

// key reads a key naming a type or an id: a non-empty string, not
// repeated; seen holds the lines of the keys read before.
func (p *parser) key(seen map[string]int, k *yaml.Node, kind string, what any) (string, bool) {
	if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
		p.errorf(k, "%s: an %s must be a string, got %s (quote it)", what, kind, yamljson.Describe(k))
		return "", false
	}
	if k.Value == "" {
		p.errorf(k, "%s: an %s must not be empty", what, kind)
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		p.errorf(k, "%s: duplicate %s %q (the first is at line %d)", what, kind, redact.Value(k.Value), first)
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

// properties reads an entity's properties: a mapping (or nothing) of JSON
// values.
func (p *parser) properties(n *yaml.Node, what redact.Text) map[string]any {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return map[string]any{}
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: the properties of an entity must be a mapping, got %s", what, yamljson.Describe(n))
		return map[string]any{}
	}
	v, ok := yamljson.SafeValue(n, what, p.errorf)
	if !ok {
		return map[string]any{}
	}
	return v.(map[string]any)
}
