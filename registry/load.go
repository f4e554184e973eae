package registry

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/coulomb/flex-auth/internal/errlist"

	"github.com/coulomb/flex-auth/internal/jsontext"
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

// Errors lists every problem found in one snapshot, in document order, one
// per line.
type Errors = errlist.List[*FieldError]

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

// Parse decodes and validates a snapshot and checks its digest. The result
// is normalized and carries the digest of its normalized content, which is
// the stored one for every file in canonical order.
func Parse(data []byte) (*Snapshot, error) {
	s, err := Decode(data)
	if err != nil {
		return nil, err
	}
	content := s.ComputeDigest()
	if err := s.verify(content); err != nil {
		return nil, Errors{err}
	}
	s.Digest, s.writtenDigest = content, ""
	return s, nil
}

// Verify checks that the stored digest matches the content. Two digests
// match: the one of the normalized content (actors by name, subjects
// sorted), which is what generate writes and which a reordering keeps, and,
// for a decoded file whose actors or subjects were not in that order, the
// one of the document exactly as written, which is how another producer
// following the contract's wording computes it. The error is a *FieldError
// wrapping ErrDigestMismatch.
func (s *Snapshot) Verify() error {
	if err := s.verify(s.ComputeDigest()); err != nil {
		return err
	}
	return nil
}

// verify is Verify with the content digest already computed: a
// 100,000-actor snapshot takes tens of milliseconds to hash.
func (s *Snapshot) verify(content string) *FieldError {
	if s.Digest == content || s.writtenDigest != "" && s.Digest == s.writtenDigest {
		return nil
	}
	return &FieldError{Path: "digest", Err: fmt.Errorf("%w (content is %s): the file was edited by hand; regenerate it with flex-auth generate", ErrDigestMismatch, content)}
}

// Decode decodes and validates a snapshot without checking its digest, so
// that drift can report a hand edit as drift rather than fail on it. The
// result is normalized. Every problem is reported, as Errors.
func Decode(data []byte) (*Snapshot, error) {
	d := &decoder{sc: scanner{data: data}}
	s, err := d.snapshot()
	if err != nil {
		line, col := position(data, err.(*jsontext.Error).Offset)
		return nil, Errors{{Err: fmt.Errorf("line %d, column %d: %w", line, col, err)}}
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

// decoder reads a snapshot into typed values, reporting wrong types,
// unknown, duplicate and missing members by JSON path and going on, so that
// one run reports every problem. Only a syntax error stops it.
type decoder struct {
	sc   scanner
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

// wrongType skips the value at the current position and reports it.
func (d *decoder) wrongType(path, want string) error {
	got, err := d.sc.skip()
	if err == nil {
		d.errorf(path, "want %s, got %s", want, got)
	}
	return err
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// members walks an object whose member names are known, calling member
// with the index of each name in known. Duplicate, unknown and missing
// names are reported here. Member paths are built only for reports: on the
// happy path a 100,000-actor load would spend more on them than on parsing.
func (d *decoder) members(path string, known []string, member func(i int) error) error {
	if d.sc.peek() != '{' {
		return d.wrongType(path, "an object")
	}
	var seen uint64 // bit i: known[i] was seen
	err := d.sc.elements(func(key []byte) error {
		i := indexOf(known, key)
		if i < 0 {
			k := string(key)
			if LooksSecret(k) {
				d.errorf(join(path, k), "unknown member that looks like key material; a registry snapshot is a non-secret fixture and never carries credentials")
			} else {
				d.errorf(join(path, k), "unknown member")
			}
			_, err := d.sc.skip()
			return err
		}
		if seen&(1<<i) != 0 {
			d.errorf(join(path, known[i]), "duplicate member")
		}
		seen |= 1 << i
		return member(i)
	})
	if err != nil {
		return err
	}
	for i, k := range known {
		if seen&(1<<i) == 0 {
			d.errorf(join(path, k), "missing")
		}
	}
	return nil
}

func indexOf(list []string, key []byte) int {
	for i, s := range list {
		if s == string(key) { // no allocation: the compiler compares in place
			return i
		}
	}
	return -1
}

func (d *decoder) str(path, key string, dst *string) error {
	if d.sc.peek() != '"' {
		return d.wrongType(join(path, key), "a string")
	}
	b, err := d.sc.str()
	*dst = string(b)
	return err
}

func (d *decoder) integer(path, key string, dst *int) error {
	if c := d.sc.peek(); c != '-' && (c < '0' || c > '9') {
		return d.wrongType(join(path, key), "an integer")
	}
	lit, integral, err := d.sc.number()
	if err != nil {
		return err
	}
	v, ok := jsontext.ParseInt(lit)
	if !integral || !ok {
		d.errorf(join(path, key), "want an integer, got %s", lit)
		return nil
	}
	if err := CheckTTL(v); err != nil {
		d.errorf(join(path, key), "%v", err)
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
	err := d.members("", snapshotMembers, func(i int) error {
		switch i {
		case 0:
			return d.str("", "schema", &s.Schema)
		case 1:
			return d.str("", "digest", &s.Digest)
		case 2:
			return d.str("", "source", &s.Source)
		case 3:
			return d.str("", "policy_package", &s.PolicyPackage)
		default:
			return d.actors(&s.Actors)
		}
	})
	if err != nil {
		return nil, err
	}
	if d.sc.peek() != 0 {
		return nil, d.sc.fail("data after the snapshot")
	}
	return s, nil
}

func (d *decoder) actors(dst *[]Actor) error {
	if d.sc.peek() != '[' {
		return d.wrongType("actors", "an array")
	}
	// A canonical actor takes about 250 bytes: size the slice once.
	actors := make([]Actor, 0, len(d.sc.data)/250+1)
	err := d.sc.elements(func([]byte) error {
		actors = append(actors, Actor{})
		a := &actors[len(actors)-1]
		p := "actors[" + strconv.Itoa(len(actors)-1) + "]"
		return d.members(p, actorMembers, func(i int) error {
			switch i {
			case 0:
				return d.str(p, "name", &a.Name)
			case 1:
				return d.str(p, "type", &a.Type)
			case 2:
				return d.str(p, "principal", &a.Principal)
			case 3:
				return d.integer(p, "default_ttl_hours", &a.DefaultTTLHours)
			case 4:
				return d.integer(p, "max_ttl_hours", &a.MaxTTLHours)
			default:
				return d.subjects(p, &a.Subjects)
			}
		})
	})
	*dst = actors
	return err
}

func (d *decoder) subjects(actorPath string, dst *[]string) error {
	if d.sc.peek() != '[' {
		return d.wrongType(actorPath+".subjects", "an array")
	}
	subs := make([]string, 0, 4)
	err := d.sc.elements(func([]byte) error {
		if d.sc.peek() != '"' {
			subs = append(subs, "")
			return d.wrongType(actorPath+".subjects["+strconv.Itoa(len(subs)-1)+"]", "a string")
		}
		b, err := d.sc.str()
		subs = append(subs, string(b))
		return err
	})
	*dst = subs
	return err
}

// check reports err at path unless decoding already reported that path.
func (d *decoder) check(path string, err error) {
	if err != nil && (d.bad == nil || !d.bad[path]) {
		d.errorf(path, "%v", err)
	}
}

// validate checks the decoded values against the inventory rules, which
// apply to a snapshot as much as to the inventory it came from.
func (d *decoder) validate(s *Snapshot) {
	if d.bad[""] {
		return // not even an object: nothing more to say
	}
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
	// owner maps every actor name to its index, to find duplicates and
	// subjects that claim another actor's identity (its name or iam:name).
	owner := make(map[string]int, len(s.Actors))
	for i := range s.Actors {
		a := &s.Actors[i]
		p := "actors[" + strconv.Itoa(i) + "]"
		if err := CheckName(a.Name); err != nil {
			d.check(p+".name", err)
			continue
		}
		if j, dup := owner[a.Name]; dup {
			d.errorf(p+".name", "duplicate actor %q (also actors[%d])", a.Name, j)
			d.bad[p] = true
			continue
		}
		owner[a.Name] = i
	}
	for i := range s.Actors {
		a := &s.Actors[i]
		if d.bad != nil && d.bad["actors["+strconv.Itoa(i)+"]"] {
			continue
		}
		d.validateActor(i, a, s.Actors, owner)
	}
}

// validateActor checks one actor's members. Paths are built only when
// there is something to report.
func (d *decoder) validateActor(i int, a *Actor, actors []Actor, owner map[string]int) {
	p := func(member string) string { return "actors[" + strconv.Itoa(i) + "]" + member }
	if t := TypeOf(a.Name); t != "" && a.Type != t {
		d.check(p(".type"), fmt.Errorf("want %q, the prefix of %q, got %q", t, a.Name, a.Type))
	}
	if err := CheckPrincipal(a.Principal); err != nil {
		d.check(p(".principal"), err)
	}
	if a.DefaultTTLHours > a.MaxTTLHours && (d.bad == nil || !d.bad[p(".max_ttl_hours")]) {
		d.check(p(".default_ttl_hours"), fmt.Errorf("%d is above max_ttl_hours %d", a.DefaultTTLHours, a.MaxTTLHours))
	}
	hasName, hasIAM := false, false
	for j, sub := range a.Subjects {
		sp := func() string { return p(".subjects[" + strconv.Itoa(j) + "]") }
		if err := CheckSubject(sub); err != nil {
			d.check(sp(), err)
			continue
		}
		if slices.Contains(a.Subjects[:j], sub) {
			d.errorf(sp(), "duplicate subject %q", sub)
			continue
		}
		claimed := strings.TrimPrefix(sub, "iam:")
		switch {
		case sub == a.Name:
			hasName = true
		case len(sub) == len(a.Name)+4 && claimed == a.Name && claimed != sub:
			hasIAM = true
		default:
			if k, taken := owner[claimed]; taken && k != i {
				other := actors[k].Name
				d.errorf(sp(), "subject %q is actor %q's identity; binding it here would let this actor sign as %q", sub, other, other)
			}
		}
	}
	if hasName && hasIAM || CheckName(a.Name) != nil || d.bad != nil && d.bad[p(".subjects")] {
		return
	}
	for _, m := range []struct {
		ok   bool
		want string
	}{{hasName, a.Name}, {hasIAM, IAMSubject(a.Name)}} {
		if !m.ok {
			d.errorf(p(".subjects"), "missing %q; every actor is bound to its name and its iam: form", m.want)
		}
	}
}
