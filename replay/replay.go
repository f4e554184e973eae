// Package replay decides recorded decisions again under a registry and
// policy pair and reports what would change: how many decisions would go
// from allow to deny, from deny to allow, or keep their effect with
// another reason, and which, grouped by actor and reason.
//
// A Replayer reads decision logs as flex-auth serve writes them (chained
// or written before the chain), streaming: memory is bounded by the
// groups of changed decisions it keeps (at most MaxGroups, each with at
// most MaxExamples decisions), whatever the size of the logs. Each
// decision is decided again by the pair for the package its line names.
// A decision that a not_given record withdraws is decided again too: its
// request was real, only its answer was a 503.
package replay

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/policy"
)

// Defaults for Options.
const (
	DefaultMaxExamples = 10
	DefaultMaxGroups   = 10000
)

// Options configure a Replayer.
type Options struct {
	// Pairs decide: at most one for each policy package, a decision line
	// being decided again by the pair of the package it names.
	Pairs []*policy.Evaluator
	// MaxExamples bounds the decisions listed for each group of changes
	// (DefaultMaxExamples when 0); MaxGroups bounds the groups kept
	// (DefaultMaxGroups when 0), the changes past it counted together.
	MaxExamples, MaxGroups int
	// Workers decide in parallel; 0 is GOMAXPROCS.
	Workers int
}

// An Outcome is a decision's effect and reason.
type Outcome struct {
	Effect string `json:"effect"`
	Reason string `json:"reason"`
}

func (o Outcome) String() string { return o.Effect + " " + o.Reason }

// A Transition is how a decision would change.
type Transition string

// The transitions.
const (
	AllowToDeny Transition = "allow_to_deny"
	DenyToAllow Transition = "deny_to_allow"
	// ReasonOnly: the same effect, for another reason.
	ReasonOnly Transition = "reason_only"
)

// TransitionOf returns the transition from one outcome to another, ""
// when they are the same.
func TransitionOf(from, to Outcome) Transition {
	switch {
	case from == to:
		return ""
	case from.Effect == to.Effect:
		return ReasonOnly
	case to.Effect == string(policy.Deny):
		return AllowToDeny
	}
	return DenyToAllow
}

// A Change is a recorded decision that would be decided otherwise.
type Change struct {
	ID       string               `json:"decision_id"`
	Time     string               `json:"time"`
	Subject  string               `json:"subject"`
	Action   string               `json:"action"`
	Resource string               `json:"resource"`
	From     Outcome              `json:"recorded"`
	To       Outcome              `json:"replayed"`
	At       decisionlog.Position `json:"-"`
}

// A Group is the changes of one actor from one outcome to another.
type Group struct {
	// Actor is the resource the decisions were about: the actor whose
	// certificate was asked for.
	Actor    string   `json:"actor"`
	From     Outcome  `json:"recorded"`
	To       Outcome  `json:"replayed"`
	Count    int      `json:"count"`
	Examples []Change `json:"decisions"`
}

// A Pair says what decided: a policy package and its data, by digest: a
// registry (RegistryDigest), or for an AuthZEN model package an entities
// document (DataDigest), as the decision log names them.
type Pair struct {
	Package        string `json:"package"`
	PolicyDigest   string `json:"policy_digest"`
	RegistryDigest string `json:"registry_digest,omitempty"`
	DataDigest     string `json:"data_digest,omitempty"`
}

// Data returns what p's package decided over: its kind, "registry" or
// "entities", and its digest.
func (p Pair) Data() (kind, digest string) {
	if p.DataDigest != "" {
		return "entities", p.DataDigest
	}
	return "registry", p.RegistryDigest
}

// dataText returns p's data as the text report names it: "registry
// sha256:...".
func (p Pair) dataText() string {
	kind, digest := p.Data()
	return kind + " " + digest
}

// pairOf returns the pair that ev is.
func pairOf(ev *policy.Evaluator) Pair {
	p := Pair{Package: ev.Package().Name(), PolicyDigest: ev.Package().Digest()}
	if ev.Entities() != nil {
		p.DataDigest = ev.DataDigest()
	} else {
		p.RegistryDigest = ev.DataDigest()
	}
	return p
}

// A Recorded counts the decisions recorded under one pair.
type Recorded struct {
	Pair
	Count int `json:"count"`
}

// A Skipped counts the decisions of a package no pair decides for.
type Skipped struct {
	Package string               `json:"package"`
	Count   int                  `json:"count"`
	First   decisionlog.Position `json:"-"`
}

// maxRecorded bounds the recorded pairs a Report lists.
const maxRecorded = 100

// A Report is what replaying found.
type Report struct {
	Files []string `json:"files"`
	// Pairs are what decided again.
	Pairs []Pair `json:"pairs"`
	// Decisions counts the decisions decided again; Unchanged those that
	// came out as recorded.
	Decisions int `json:"decisions"`
	Unchanged int `json:"unchanged"`
	// Transitions counts the changes by transition.
	Transitions map[Transition]int `json:"transitions"`
	// Groups lists the changes by actor, then recorded and replayed
	// outcome; Ungrouped counts the changes past MaxGroups.
	Groups    []*Group `json:"groups"`
	Ungrouped int      `json:"ungrouped"`
	// Recorded lists the pairs the decisions were recorded under, most
	// first (at most maxRecorded).
	Recorded []Recorded `json:"recorded_under"`
	// Skipped lists the decisions not decided again because no pair was
	// given for their package; Malformed counts decision lines that could
	// not be read (FirstMalformed is the first, with why).
	Skipped        []Skipped `json:"skipped"`
	Malformed      int       `json:"malformed"`
	FirstMalformed string    `json:"first_malformed,omitempty"`
	// Other counts the lines that are not decisions: not_given records,
	// checkpoints, torn lines, lines that are not records.
	Other int `json:"other_lines"`
}

// Changed returns how many decisions would change.
func (r *Report) Changed() int { return r.Decisions - r.Unchanged }

// Complete reports whether every decision line was decided again.
func (r *Report) Complete() bool { return len(r.Skipped) == 0 && r.Malformed == 0 }

// ErrIncomplete reports decisions that could not be decided again.
var ErrIncomplete = errors.New("not every recorded decision could be decided again")

// A Replayer decides recorded decisions again.
type Replayer struct {
	opt Options
	// deciders are the pairs by package name as JSON (with its quotes),
	// and names the names by the same keys.
	deciders map[string]decider
	names    map[string]string
	rep      Report
	groups   map[groupKey]*Group
	recorded map[Pair]int
	skipped  map[string]*Skipped
	file     string
	line     int
}

type groupKey struct {
	actor    string
	from, to Outcome
}

// New returns a Replayer deciding with the pairs of opt. Two pairs for
// one package are an error.
func New(opt Options) (*Replayer, error) {
	if len(opt.Pairs) == 0 {
		return nil, errors.New("replay: no registry and policy to decide with")
	}
	if opt.MaxExamples <= 0 {
		opt.MaxExamples = DefaultMaxExamples
	}
	if opt.MaxGroups <= 0 {
		opt.MaxGroups = DefaultMaxGroups
	}
	r := &Replayer{opt: opt, deciders: map[string]decider{}, names: map[string]string{}, groups: map[groupKey]*Group{},
		recorded: map[Pair]int{}, skipped: map[string]*Skipped{}}
	r.rep.Transitions = map[Transition]int{AllowToDeny: 0, DenyToAllow: 0, ReasonOnly: 0}
	for _, ev := range opt.Pairs {
		name := ev.Package().Name()
		key := strconv.Quote(name) // a package name has nothing to escape
		if _, dup := r.deciders[key]; dup {
			return nil, fmt.Errorf("replay: two policy packages named %s", name)
		}
		var d decider = checkDecider{ev}
		if ev.Entities() != nil {
			d = accessDecider{ev}
		}
		r.deciders[key], r.names[key] = d, name
		r.rep.Pairs = append(r.rep.Pairs, pairOf(ev))
	}
	return r, nil
}

// A decider decides a recorded decision again.
type decider interface {
	// decide returns the decision's new outcome, or an error when the
	// line is not a decision it can read. sc is the calling worker's.
	decide(rec *decisionlog.Record, sc *scratch) (Outcome, error)
}

// scratch is a worker's reusable state.
type scratch struct {
	parser decisionlog.Parser
	rec    decisionlog.Record
	dec    jsontext.Decoder
	src    bytes.Buffer
	buf    []byte
	// The pair of the last decision, as written and as strings: most
	// lines of a log share it. dataDigest is its registry_digest or,
	// for an AuthZEN model package, its data_digest.
	policyDigest, dataDigest []byte
	pair                     Pair
	// Decoded before, by JSON text (see maxCached).
	strs    map[string]string
	objects map[string]map[string]any
}

// same reports whether the JSON string raw holds s, without allocating.
func (sc *scratch) same(raw jsontext.Value, s string) bool {
	if raw.Kind() != '"' {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == s
	}
	var err error
	sc.buf, err = jsontext.AppendUnquote(sc.buf[:0], raw)
	return err == nil && string(sc.buf) == s
}

// A result is what a worker made of a line.
type result struct {
	decision bool
	err      error
	pkg      string
	pair     Pair
	change   *Change // when the outcome changed
}

// Add reads the next decision log, named name in the report. It returns an
// error only when r cannot be read.
func (rp *Replayer) Add(name string, r io.Reader) error {
	rp.rep.Files = append(rp.rep.Files, name)
	rp.file, rp.line = name, 0
	err := decisionlog.ProcessLines(r, rp.opt.Workers, func() func([]byte, *result) {
		sc := &scratch{}
		return func(line []byte, out *result) {
			*out = result{}
			if sc.parser.Parse(line, &sc.rec) != nil || sc.rec.Kind != decisionlog.Decision {
				return
			}
			out.decision = true
			rp.decide(sc, out)
		}
	}, rp.consume)
	if err != nil {
		var tooLong *decisionlog.LineTooLongError
		if errors.As(err, &tooLong) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// decide decides the decision in sc.rec again. It runs on a worker, and
// allocates only for a decision that changes, beyond what deciding takes.
func (rp *Replayer) decide(sc *scratch, out *result) {
	rec := &sc.rec
	key := string(rec.Policy)
	d, ok := rp.deciders[key] // keyed by the name as JSON: no allocation
	if !ok {
		// Another package, or this one's name written with escapes.
		name := decisionlog.String(rec.Policy)
		if name == "" {
			out.err = errors.New("no policy")
			return
		}
		key = strconv.Quote(name)
		if d, ok = rp.deciders[key]; !ok {
			out.pkg = name // the consumer counts it skipped
			return
		}
	}
	out.pkg = rp.names[key]
	var from Outcome
	switch {
	case sc.same(rec.Effect, string(policy.Allow)):
		from.Effect = string(policy.Allow)
	case sc.same(rec.Effect, string(policy.Deny)):
		from.Effect = string(policy.Deny)
	default:
		out.err = fmt.Errorf("effect %.40s: want allow or deny", rec.Effect)
		return
	}
	data := rec.RegistryDigest
	if data == nil {
		data = rec.DataDigest
	}
	if !bytes.Equal(rec.PolicyDigest, sc.policyDigest) || !bytes.Equal(data, sc.dataDigest) || sc.pair.Package != out.pkg {
		sc.policyDigest = append(sc.policyDigest[:0], rec.PolicyDigest...)
		sc.dataDigest = append(sc.dataDigest[:0], data...)
		sc.pair = Pair{Package: out.pkg, PolicyDigest: decisionlog.String(rec.PolicyDigest)}
		if rec.RegistryDigest != nil {
			sc.pair.RegistryDigest = decisionlog.String(rec.RegistryDigest)
		} else {
			sc.pair.DataDigest = decisionlog.String(rec.DataDigest)
		}
	}
	out.pair = sc.pair
	to, err := d.decide(rec, sc)
	if err != nil {
		out.err = err
		return
	}
	if to.Effect == from.Effect && sc.same(rec.Reason, to.Reason) {
		return
	}
	from.Reason = decisionlog.String(rec.Reason)
	out.change = &Change{
		ID: decisionlog.String(rec.DecisionID), Time: decisionlog.String(rec.Time),
		Subject: decisionlog.String(rec.Subject), Action: decisionlog.String(rec.Action), Resource: decisionlog.String(rec.Resource),
		From: from, To: to,
	}
}

// consume counts a line's result, in log order.
func (rp *Replayer) consume(line []byte, out *result) error {
	rp.line++
	at := decisionlog.Position{File: rp.file, Line: rp.line}
	if !out.decision {
		rp.rep.Other++
		return nil
	}
	if out.err != nil {
		rp.rep.Malformed++
		if rp.rep.FirstMalformed == "" {
			rp.rep.FirstMalformed = at.String() + ": " + out.err.Error()
		}
		return nil
	}
	if out.pair.Package == "" {
		s := rp.skipped[out.pkg]
		if s == nil {
			s = &Skipped{Package: out.pkg, First: at}
			rp.skipped[out.pkg] = s
		}
		s.Count++
		return nil
	}
	rp.rep.Decisions++
	if n, ok := rp.recorded[out.pair]; ok || len(rp.recorded) < maxRecorded {
		rp.recorded[out.pair] = n + 1
	}
	c := out.change
	if c == nil {
		rp.rep.Unchanged++
		return nil
	}
	c.At = at
	rp.rep.Transitions[TransitionOf(c.From, c.To)]++
	k := groupKey{c.Resource, c.From, c.To}
	g := rp.groups[k]
	if g == nil {
		if len(rp.groups) >= rp.opt.MaxGroups {
			rp.rep.Ungrouped++
			return nil
		}
		g = &Group{Actor: c.Resource, From: c.From, To: c.To}
		rp.groups[k] = g
	}
	g.Count++
	if len(g.Examples) < rp.opt.MaxExamples {
		g.Examples = append(g.Examples, *c)
	}
	return nil
}

// Report returns what was found in the logs added so far: groups by
// actor, then recorded outcome, then replayed outcome.
func (rp *Replayer) Report() *Report {
	rep := rp.rep
	rep.Transitions = maps.Clone(rp.rep.Transitions)
	rep.Groups = make([]*Group, 0, len(rp.groups))
	for _, g := range rp.groups {
		rep.Groups = append(rep.Groups, g)
	}
	slices.SortFunc(rep.Groups, func(a, b *Group) int {
		return cmp.Or(cmp.Compare(a.Actor, b.Actor), cmp.Compare(a.From.String(), b.From.String()), cmp.Compare(a.To.String(), b.To.String()))
	})
	rep.Recorded = nil
	for p, n := range rp.recorded {
		rep.Recorded = append(rep.Recorded, Recorded{Pair: p, Count: n})
	}
	slices.SortFunc(rep.Recorded, func(a, b Recorded) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Package, b.Package), cmp.Compare(a.PolicyDigest, b.PolicyDigest), cmp.Compare(a.dataText(), b.dataText()))
	})
	rep.Skipped = nil
	for _, s := range rp.skipped {
		rep.Skipped = append(rep.Skipped, *s)
	}
	slices.SortFunc(rep.Skipped, func(a, b Skipped) int { return cmp.Compare(a.Package, b.Package) })
	return &rep
}
