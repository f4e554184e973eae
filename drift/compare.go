// Package drift compares two registries, EXPECTED (what should be) and
// ACTUAL (what is), each an inventory, a snapshot file, a running
// flex-auth or a publication, and reports the difference: a change list
// addressed by actor name, findings about the ACTUAL file itself
// (formatting, hand edits) and, given the checked-in policy package, about
// the policy a side serves, and a unified diff, rendered as text, JSON,
// Markdown or GitHub workflow commands (CONTRACT section 5).
//
// Direction: an add is in EXPECTED only, a remove in ACTUAL only, and a
// change goes from ACTUAL's value (before) to EXPECTED's (after), the way
// Write would apply it.
package drift

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/coulomb/flex-auth/registry"
)

// An Op is the kind of a change.
type Op string

// The change operations.
const (
	OpAdd    Op = "add"    // in EXPECTED only
	OpRemove Op = "remove" // in ACTUAL only
	OpChange Op = "change" // in both, with different values
)

// A Change is one semantic difference between the registries.
type Change struct {
	Op Op
	// Actor names the actor; "" for a top-level member.
	Actor string
	// Member names the member ("max_ttl_hours", "policy_package"); "" for
	// a whole actor.
	Member string
	// Before is ACTUAL's value and After EXPECTED's: a string, an int,
	// a []string of subjects, or a registry.Actor for a whole actor. Nil
	// on the side that lacks it.
	Before, After any
}

// Path returns the JSON Pointer of the changed value in the snapshot,
// addressing actors by name: "/actors/agt-x/max_ttl_hours",
// "/actors/agt-x", "/policy_package".
func (d Change) Path() string {
	esc := strings.NewReplacer("~", "~0", "/", "~1")
	if d.Actor == "" {
		return "/" + esc.Replace(d.Member)
	}
	p := "/actors/" + esc.Replace(d.Actor)
	if d.Member != "" {
		p += "/" + esc.Replace(d.Member)
	}
	return p
}

// Name returns the dotted name of the changed value: "agt-x.max_ttl_hours",
// "agt-x", "policy_package".
func (d Change) Name() string {
	switch {
	case d.Actor == "":
		return d.Member
	case d.Member == "":
		return d.Actor
	}
	return d.Actor + "." + d.Member
}

// String formats the change as one line of the change list:
// "~ agt-x.max_ttl_hours: 24 -> 12", "+ agt-new", "- atm-old".
func (d Change) String() string {
	switch d.Op {
	case OpAdd:
		return "+ " + d.Name()
	case OpRemove:
		return "- " + d.Name()
	}
	return "~ " + d.Name() + ": " + FormatValue(d.Before) + " -> " + FormatValue(d.After)
}

// FormatValue formats a member value the way the change list shows it:
// strings and numbers bare, subject lists in brackets.
func FormatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case []string:
		return "[" + strings.Join(v, ", ") + "]"
	case registry.Actor:
		return fmt.Sprintf("%s (principal %s, ttl %d, max %d, subjects %s)", v.Name, v.Principal, v.DefaultTTLHours, v.MaxTTLHours, FormatValue(v.Subjects))
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// A FindingKind names a problem with a file itself rather than with the
// registry content.
type FindingKind string

// The kinds of finding.
const (
	// Formatting: the ACTUAL file's content is right (or is reported by
	// the change list) but its bytes are not the canonical form.
	Formatting FindingKind = "formatting"
	// EditedByHand: a file's digest does not match its content.
	EditedByHand FindingKind = "edited_by_hand"
	// PolicyDrift: a side serves, or carries, another policy package than
	// the checked-in one that goes with EXPECTED.
	PolicyDrift FindingKind = "policy"
)

// A Finding is drift that the change list cannot show.
type Finding struct {
	Kind FindingKind
	// Side is "expected" or "actual".
	Side string
	// Line is the 1-based line of the side's file where it shows.
	Line int
	// Message says what is wrong and how to fix it, in one line.
	Message string
}

// Label returns the finding's short name: "formatting only" when the
// formatting is all that is wrong, "edited by hand", ...
func (f Finding) Label(onlyFinding bool) string {
	switch {
	case f.Kind == EditedByHand:
		return "edited by hand"
	case f.Kind == PolicyDrift:
		return "policy differs"
	case onlyFinding:
		return "formatting only"
	}
	return "not canonical"
}

// A Report is the result of comparing EXPECTED with ACTUAL.
type Report struct {
	Expected, Actual *Side
	// Changes lists the content differences: top-level members first,
	// then actors by name, each actor's members in snapshot order.
	Changes []Change
	// Findings lists drift the change list does not show.
	Findings []Finding
	// Diff is the unified diff from ACTUAL's text to EXPECTED's canonical
	// form ("--- ACTUAL", "+++ EXPECTED"), "" when they are equal.
	Diff string
	// Want is EXPECTED's canonical form with a correct digest: what
	// Write puts in the ACTUAL file.
	Want []byte
	// want is the snapshot whose canonical form is Want.
	want *registry.Snapshot
	// Sections are reported after the comparison, in every format: the
	// impact of EXPECTED on recorded decisions, when drift is given some.
	// They do not change whether ACTUAL is in sync.
	Sections []Section
	// Policy is the checked-in policy package that goes with EXPECTED,
	// nil when none was given (ComparePolicy).
	Policy *Policy
	// Notes say what was not compared, and why: they are not drift.
	Notes []string
}

// InSync reports whether ACTUAL is what EXPECTED says it should be: the
// same content, a digest that matches it, and, for a file, the canonical
// bytes.
func (r *Report) InSync() bool { return len(r.Changes) == 0 && len(r.Findings) == 0 }

// FormattingOnly reports whether the only drift is ACTUAL's formatting.
func (r *Report) FormattingOnly() bool {
	return len(r.Changes) == 0 && len(r.Findings) == 1 && r.Findings[0].Kind == Formatting
}

// Compare compares EXPECTED with ACTUAL, without a checked-in policy
// package: ComparePolicy(expected, actual, nil).
func Compare(expected, actual *Side) *Report { return ComparePolicy(expected, actual, nil) }

// ComparePolicy compares EXPECTED with ACTUAL: their registries, and the
// policy package each side serves (Side.Policy) with want, the checked-in
// package that goes with EXPECTED. A side that serves another package
// than want is drift, a PolicyDrift finding; an ACTUAL that does not say
// which policy it serves is a note. Without want, two sides serving
// different packages are a note, not drift.
func ComparePolicy(expected, actual *Side, want *Policy) *Report {
	r := &Report{Expected: expected, Actual: actual}
	e, a := expected.Snapshot, actual.Snapshot
	top := func(member, before, after string) {
		if before != after {
			r.Changes = append(r.Changes, Change{Op: OpChange, Member: member, Before: before, After: after})
		}
	}
	top("schema", a.Schema, e.Schema)
	top("source", a.Source, e.Source)
	top("policy_package", a.PolicyPackage, e.PolicyPackage)
	ea, aa := e.Actors, a.Actors
	for i, j := 0, 0; i < len(ea) || j < len(aa); {
		switch {
		case j == len(aa) || i < len(ea) && ea[i].Name < aa[j].Name:
			r.Changes = append(r.Changes, Change{Op: OpAdd, Actor: ea[i].Name, After: ea[i]})
			i++
		case i == len(ea) || ea[i].Name > aa[j].Name:
			r.Changes = append(r.Changes, Change{Op: OpRemove, Actor: aa[j].Name, Before: aa[j]})
			j++
		default:
			r.Changes = compareActors(r.Changes, &aa[j], &ea[i])
			i++
			j++
		}
	}

	r.want, r.Want = e, expected.Text
	if !expected.Canonical || !expected.DigestMatches() {
		sealed := *e
		sealed.Digest = expected.ContentDigest
		r.want, r.Want = &sealed, sealed.Canonical()
	}
	if !expected.DigestMatches() {
		r.Findings = append(r.Findings, digestFinding("expected", expected))
	}
	if !actual.DigestMatches() {
		r.Findings = append(r.Findings, digestFinding("actual", actual))
	}
	if actual.Kind == File && !actual.Canonical {
		r.Findings = append(r.Findings, formattingFinding(actual, r.Want, len(r.Changes) == 0 && len(r.Findings) == 0))
	}
	r.comparePolicies(want)

	r.Diff = unifiedDiff(actual, r.want, r.Want, expected.Source)
	return r
}

func actorNames(s *registry.Snapshot) []string {
	names := make([]string, len(s.Actors))
	for i := range s.Actors {
		names[i] = s.Actors[i].Name
	}
	return names
}

// compareActors appends the member changes from actual a to expected e.
func compareActors(cs []Change, a, e *registry.Actor) []Change {
	str := func(member, before, after string) {
		if before != after {
			cs = append(cs, Change{Op: OpChange, Actor: e.Name, Member: member, Before: before, After: after})
		}
	}
	num := func(member string, before, after int) {
		if before != after {
			cs = append(cs, Change{Op: OpChange, Actor: e.Name, Member: member, Before: before, After: after})
		}
	}
	str("type", a.Type, e.Type)
	str("principal", a.Principal, e.Principal)
	num("default_ttl_hours", a.DefaultTTLHours, e.DefaultTTLHours)
	num("max_ttl_hours", a.MaxTTLHours, e.MaxTTLHours)
	if !slices.Equal(a.Subjects, e.Subjects) {
		cs = append(cs, Change{Op: OpChange, Actor: e.Name, Member: "subjects", Before: a.Subjects, After: e.Subjects})
	}
	return cs
}

func digestFinding(side string, s *Side) Finding {
	what := strings.ToUpper(side) + " " + s.Source
	fix := "regenerate it with flex-auth generate instead of editing it"
	if s.Kind == Runtime {
		what = strings.ToUpper(side) + " " + s.Source + " serves a snapshot whose"
		fix = "the service loaded a snapshot that was edited by hand; redeploy a generated one"
	} else {
		what += ":"
	}
	return Finding{
		Kind:    EditedByHand,
		Side:    side,
		Line:    lineOf(s.Text, `"digest"`),
		Message: fmt.Sprintf("%s digest %s does not match its content (%s); %s", what, s.Snapshot.Digest, s.ContentDigest, fix),
	}
}

func formattingFinding(actual *Side, want []byte, only bool) Finding {
	line := firstDifferentLine(actual.Text, actual.Snapshot.Canonical())
	msg := fmt.Sprintf("ACTUAL %s is not in canonical form (from line %d on)", actual.Source, line)
	if only {
		msg = fmt.Sprintf("ACTUAL %s has the right content but is not in canonical form (from line %d on); flex-auth drift --write rewrites it", actual.Source, line)
	}
	return Finding{Kind: Formatting, Side: "actual", Line: line, Message: msg}
}

// firstDifferentLine returns the 1-based line of a where a and b first
// differ.
func firstDifferentLine(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return 1 + bytes.Count(a[:n], []byte{'\n'})
}

// lineOf returns the 1-based line of the first occurrence of s in data, or
// 1.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 1
	}
	return 1 + bytes.Count(data[:i], []byte{'\n'})
}
