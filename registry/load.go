package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ErrDigestMismatch reports a snapshot whose digest does not match its
// content: somebody edited it by hand.
var ErrDigestMismatch = errors.New("digest does not match the content")

// A FieldError is a problem with one member of a snapshot, addressed by its
// JSON path ("actors[2].max_ttl_hours"). Syntax errors have the path "" and
// say where in the text they are.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors lists every problem found in one snapshot, in document order.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As see each problem.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// maxErrors bounds how many problems one load reports; past that, more
// lines help nobody.
const maxErrors = 100

// Load reads, decodes, validates and verifies the snapshot file at path.
func Load(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, &FileError{File: path, Errs: err.(Errors)}
	}
	return s, nil
}

// A FileError is every problem found in one snapshot file. It prints one
// line per problem, each starting with the file name, as compilers do.
type FileError struct {
	File string
	Errs Errors
}

func (e *FileError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		lines[i] = e.File + ": " + fe.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *FileError) Unwrap() error { return e.Errs }

// Parse decodes and validates a snapshot and checks its digest.
func Parse(data []byte) (*Snapshot, error) {
	s, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(); err != nil {
		return nil, Errors{err.(*FieldError)}
	}
	return s, nil
}

// Verify checks that the stored digest matches the content. The error is a
// *FieldError wrapping ErrDigestMismatch.
func (s *Snapshot) Verify() error {
	if want := s.ComputeDigest(); s.Digest != want {
		return &FieldError{Path: "digest", Err: fmt.Errorf("%w (content is %s): the file was edited by hand; regenerate it with flex-auth generate", ErrDigestMismatch, want)}
	}
	return nil
}

// Decode decodes and validates a snapshot without checking its digest, so
// that drift can report a hand edit as drift rather than fail on it. The
// result is normalized. Every problem is reported, as Errors.
func Decode(data []byte) (*Snapshot, error) {
	d := &decoder{dec: json.NewDecoder(bytes.NewReader(data)), data: data}
	d.dec.UseNumber()
	s, err := d.snapshot()
	if err != nil {
		return nil, Errors{d.syntax(err)}
	}
	d.validate(s)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	s.normalize()
	return s, nil
}

type decoder struct {
	dec  *json.Decoder
	data []byte
	errs Errors
	// bad holds the paths already reported while decoding (wrong type,
	// missing), so that validation does not report them a second time.
	bad map[string]bool
}

func (d *decoder) errorf(path, format string, args ...any) {
	if d.bad == nil {
		d.bad = make(map[string]bool)
	}
	d.bad[path] = true
	if len(d.errs) < maxErrors {
		d.errs = append(d.errs, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
	}
}

// syntax turns a decoding error into a FieldError that says where it is.
func (d *decoder) syntax(err error) *FieldError {
	off := d.dec.InputOffset()
	if se, ok := err.(*json.SyntaxError); ok {
		off = se.Offset
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = errors.New("unexpected end of JSON input")
	}
	line := 1 + bytes.Count(d.data[:off], []byte{'\n'})
	col := int(off) - bytes.LastIndexByte(d.data[:off], '\n')
	return &FieldError{Err: fmt.Errorf("line %d, column %d: %w", line, col, err)}
}

// describe names a JSON token for "want X, got Y" messages.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "string " + strconv.Quote(t)
	case json.Number:
		return "number " + string(t)
	case bool:
		return "boolean " + strconv.FormatBool(t)
	}
	return "null"
}

// skip consumes the rest of a value whose first token was tok.
func (d *decoder) skip(tok json.Token) error {
	if t, ok := tok.(json.Delim); ok && (t == '{' || t == '[') {
		for depth := 1; depth > 0; {
			tok, err := d.dec.Token()
			if err != nil {
				return err
			}
			if t, ok := tok.(json.Delim); ok {
				if t == '{' || t == '[' {
					depth++
				} else {
					depth--
				}
			}
		}
	}
	return nil
}

// members walks an object, calling member for each member name with the
// path of the member. Duplicate and unknown names are reported here.
func (d *decoder) members(path string, known []string, member func(key, path string) error) error {
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		d.errorf(path, "want an object, got %s", describe(tok))
		return d.skip(tok)
	}
	seen := make(map[string]bool, len(known))
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		p := key
		if path != "" {
			p = path + "." + key
		}
		known := containsString(known, key)
		switch {
		case seen[key]:
			d.errorf(p, "duplicate member")
		case !known && LooksSecret(key):
			d.errorf(p, "unknown member that looks like key material; a registry snapshot is a non-secret fixture and never carries credentials")
		case !known:
			d.errorf(p, "unknown member")
		}
		seen[key] = true
		if !known {
			tok, err := d.dec.Token()
			if err == nil {
				err = d.skip(tok)
			}
			if err != nil {
				return err
			}
			continue
		}
		if err := member(key, p); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil { // '}'
		return err
	}
	for _, k := range known {
		if !seen[k] {
			p := k
			if path != "" {
				p = path + "." + k
			}
			d.errorf(p, "missing")
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func (d *decoder) str(path string, dst *string) error {
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	s, ok := tok.(string)
	if !ok {
		d.errorf(path, "want a string, got %s", describe(tok))
		return d.skip(tok)
	}
	*dst = s
	return nil
}

func (d *decoder) integer(path string, dst *int) error {
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	n, ok := tok.(json.Number)
	if !ok {
		d.errorf(path, "want an integer, got %s", describe(tok))
		return d.skip(tok)
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		d.errorf(path, "want an integer, got %s", n)
		return nil
	}
	if err := CheckTTL(v); err != nil {
		d.errorf(path, "%v", err)
		return nil
	}
	*dst = int(v)
	return nil
}

var (
	snapshotMembers = []string{"schema", "digest", "source", "policy_package", "actors"}
	actorMembers    = []string{"name", "type", "principal", "default_ttl_hours", "max_ttl_hours", "subjects"}
)

func (d *decoder) snapshot() (*Snapshot, error) {
	s := &Snapshot{}
	err := d.members("", snapshotMembers, func(key, path string) error {
		switch key {
		case "schema":
			return d.str(path, &s.Schema)
		case "digest":
			return d.str(path, &s.Digest)
		case "source":
			return d.str(path, &s.Source)
		case "policy_package":
			return d.str(path, &s.PolicyPackage)
		default: // actors
			return d.actors(path, &s.Actors)
		}
	})
	if err != nil {
		return nil, err
	}
	if tok, err := d.dec.Token(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("data after the snapshot: %s", describe(tok))
		}
		return nil, err
	}
	return s, nil
}

func (d *decoder) actors(path string, dst *[]Actor) error {
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		d.errorf(path, "want an array, got %s", describe(tok))
		return d.skip(tok)
	}
	actors := []Actor{}
	for i := 0; d.dec.More(); i++ {
		actors = append(actors, Actor{})
		a := &actors[len(actors)-1]
		ap := path + "[" + strconv.Itoa(i) + "]"
		err := d.members(ap, actorMembers, func(key, p string) error {
			switch key {
			case "name":
				return d.str(p, &a.Name)
			case "type":
				return d.str(p, &a.Type)
			case "principal":
				return d.str(p, &a.Principal)
			case "default_ttl_hours":
				return d.integer(p, &a.DefaultTTLHours)
			case "max_ttl_hours":
				return d.integer(p, &a.MaxTTLHours)
			default: // subjects
				return d.subjects(p, &a.Subjects)
			}
		})
		if err != nil {
			return err
		}
	}
	*dst = actors
	_, err = d.dec.Token() // ']'
	return err
}

func (d *decoder) subjects(path string, dst *[]string) error {
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		d.errorf(path, "want an array, got %s", describe(tok))
		return d.skip(tok)
	}
	subs := make([]string, 0, 2)
	for i := 0; d.dec.More(); i++ {
		var s string
		if err := d.str(path+"["+strconv.Itoa(i)+"]", &s); err != nil {
			return err
		}
		subs = append(subs, s)
	}
	*dst = subs
	_, err = d.dec.Token() // ']'
	return err
}

// check reports err at path unless decoding already reported that path.
func (d *decoder) check(path string, err error) {
	if err != nil && !d.bad[path] {
		d.errorf(path, "%v", err)
	}
}

// validate checks the decoded values against the inventory rules, which
// apply to a snapshot as much as to the inventory it came from.
func (d *decoder) validate(s *Snapshot) {
	if s.Schema != Schema {
		d.check("schema", fmt.Errorf("want %q, got %q", Schema, s.Schema))
	}
	if !strings.HasPrefix(s.Digest, "sha256:") || len(s.Digest) != len("sha256:")+64 || strings.Trim(s.Digest[7:], "0123456789abcdef") != "" {
		d.check("digest", fmt.Errorf(`want "sha256:" and 64 lowercase hex digits, got %q`, s.Digest))
	}
	d.check("source", CheckPackageName(s.Source))
	d.check("policy_package", CheckPackageName(s.PolicyPackage))
	if len(s.Actors) == 0 {
		d.check("actors", errors.New("no actors; a registry needs at least one"))
	}
	// owner maps every actor identity (name and iam:name) to its actor's
	// index, to find duplicates and subjects that claim another actor.
	owner := make(map[string]int, 2*len(s.Actors))
	for i := range s.Actors {
		a := &s.Actors[i]
		p := "actors[" + strconv.Itoa(i) + "]"
		if err := CheckName(a.Name); err != nil {
			d.check(p+".name", err)
			continue
		}
		if j, dup := owner[a.Name]; dup {
			d.errorf(p+".name", "duplicate actor %q (also actors[%d])", a.Name, j)
			continue
		}
		owner[a.Name], owner[IAMSubject(a.Name)] = i, i
	}
	for i := range s.Actors {
		a := &s.Actors[i]
		p := "actors[" + strconv.Itoa(i) + "]"
		if t := TypeOf(a.Name); t != "" && a.Type != t {
			d.check(p+".type", fmt.Errorf("want %q, the prefix of %q, got %q", t, a.Name, a.Type))
		}
		d.check(p+".principal", CheckPrincipal(a.Principal))
		if a.DefaultTTLHours > a.MaxTTLHours && !d.bad[p+".max_ttl_hours"] {
			d.check(p+".default_ttl_hours", fmt.Errorf("%d is above max_ttl_hours %d", a.DefaultTTLHours, a.MaxTTLHours))
		}
		seen := make(map[string]bool, len(a.Subjects))
		for j, sub := range a.Subjects {
			sp := p + ".subjects[" + strconv.Itoa(j) + "]"
			if err := CheckSubject(sub); err != nil {
				d.errorf(sp, "%v", err)
				continue
			}
			if seen[sub] {
				d.errorf(sp, "duplicate subject %q", sub)
			}
			seen[sub] = true
			if k, taken := owner[sub]; taken && k != i {
				d.errorf(sp, "subject %q is actor %q's identity; binding it here would let this actor sign as %q", sub, s.Actors[k].Name, s.Actors[k].Name)
			}
		}
		for _, want := range []string{a.Name, IAMSubject(a.Name)} {
			if !seen[want] && CheckName(a.Name) == nil && !d.bad[p+".subjects"] {
				d.errorf(p+".subjects", "missing %q; every actor is bound to its name and its iam: form", want)
			}
		}
	}
}
