package registry

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/coulomb/flex-auth/internal/errlist"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
)

// ErrDigestMismatch reports a snapshot whose digest does not match its
// content: somebody edited it by hand.
var ErrDigestMismatch = errors.New("digest does not match the content")

// A FieldError is a problem with one member of a snapshot, addressed by its
// JSON path ("actors[2].max_ttl_hours"). Syntax errors have the path "" and
// say where in the text they are.
//
// Its message may quote the file (the value that breaks a rule, an
// unknown member's name); its redacted form (Redacted) does not, for
// those who may read the problem but not the file: the path, with a
// member name from the file as redact.Hidden, and the rule broken.
type FieldError struct {
	Path string
	Err  error
	// redactedPath is Path with a member name read from the file left
	// out; "" when Path has none.
	redactedPath string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Redacted returns the message without what the file holds.
func (e *FieldError) Redacted() string {
	p := e.Path
	if e.redactedPath != "" {
		p = e.redactedPath
	}
	if p == "" {
		return redact.Message(e.Err)
	}
	return p + ": " + redact.Message(e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors lists every problem found in one snapshot, in document order, one
// per line.
type Errors = errlist.List[*FieldError]

// maxErrors bounds how many problems one load reports; past that, more
// lines help nobody.
const maxErrors = 100

// Load reads, decodes, validates and verifies the snapshot file at path:
// a regular file of at most readfile.Registry.Max bytes.
func Load(path string) (*Snapshot, error) {
	data, err := readfile.Read(path, readfile.Registry)
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

// Redacted returns the problems' redacted forms, one per line, each
// starting with the file name.
func (e *FileError) Redacted() string {
	lines := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		lines[i] = e.File + ": " + fe.Redacted()
	}
	return strings.Join(lines, "\n")
}

func (e *FileError) Unwrap() error { return e.Errs }

// Parse decodes and validates a snapshot and checks its digest. The result
// is normalized and carries the digest of its normalized content, which is
// the stored one for every file in canonical order.
func Parse(data []byte) (*Snapshot, error) {
	s, err := ParseUnverified(data)
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
		d.check("schema", redact.Errorf("want %q, got %q", Schema, redact.Value(s.Schema)))
	}
	if !strings.HasPrefix(s.Digest, "sha256:") || len(s.Digest) != len("sha256:")+64 || strings.Trim(s.Digest[7:], "0123456789abcdef") != "" {
		d.check("digest", redact.Errorf(`want "sha256:" and 64 lowercase hex digits, got %q`, redact.Value(s.Digest)))
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
			d.errorf(p+".name", "duplicate actor %q (also actors[%d])", redact.Value(a.Name), j)
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
		d.check(p(".type"), redact.Error(fmt.Errorf("want %q, the prefix of %q, got %q", t, a.Name, a.Type), "want the prefix of the actor's name"))
	}
	if err := CheckPrincipal(a.Principal); err != nil {
		d.check(p(".principal"), err)
	}
	if a.DefaultTTLHours > a.MaxTTLHours && (d.bad == nil || !d.bad[p(".max_ttl_hours")]) {
		d.check(p(".default_ttl_hours"), redact.Error(fmt.Errorf("%d is above max_ttl_hours %d", a.DefaultTTLHours, a.MaxTTLHours), "above max_ttl_hours"))
	}
	hasName, hasIAM := false, false
	for j, sub := range a.Subjects {
		sp := func() string { return p(".subjects[" + strconv.Itoa(j) + "]") }
		if err := CheckSubject(sub); err != nil {
			d.check(sp(), err)
			continue
		}
		if slices.Contains(a.Subjects[:j], sub) {
			d.errorf(sp(), "duplicate subject %q", redact.Value(sub))
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
				d.report(&FieldError{Path: sp(), Err: redact.Error(
					fmt.Errorf("subject %q is actor %q's identity; binding it here would let this actor sign as %q", sub, other, other),
					"the subject is another actor's identity; binding it here would let this actor sign as that actor")})
			}
		}
	}
	if hasName && hasIAM || CheckName(a.Name) != nil || d.bad != nil && d.bad[p(".subjects")] {
		return
	}
	for _, m := range []struct {
		ok         bool
		want, what string
	}{{hasName, a.Name, "name"}, {hasIAM, IAMSubject(a.Name), "iam: form"}} {
		if !m.ok {
			d.report(&FieldError{Path: p(".subjects"), Err: redact.Error(
				fmt.Errorf("missing %q; every actor is bound to its name and its iam: form", m.want),
				"missing the actor's "+m.what+"; every actor is bound to its name and its iam: form")})
		}
	}
}
