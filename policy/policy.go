// Package policy parses, compiles and evaluates flex-auth policy packages
// (CONTRACT section 3): Markdown documents that people read and flex-auth
// executes. A package has YAML front matter (name, version, default
// decision), prose, one fenced `rules` block of ordered rules whose `when`
// conditions are CEL expressions, and optional fenced `tests` blocks.
//
// Parse compiles and type-checks every rule once. NewEvaluator binds a
// package to a registry snapshot; Evaluator.Decide answers one request with
// the first rule whose condition is true, or the package default.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"

	"github.com/coulomb/flex-auth/internal/readfile"
)

// Effect is what a decision does: allow or deny.
type Effect string

// The two effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// ReasonPolicyError is the reason of a deny caused by an evaluation error.
const ReasonPolicyError = "policy_error"

// Request is one question. Context holds JSON-decoded values: int64 for
// integral JSON numbers, float64 for other numbers, string, bool, nil,
// []any, map[string]any. Context may be nil.
type Request struct {
	Subject, Action, Resource string
	Context                   map[string]any
}

// Decision is the answer to a request.
type Decision struct {
	Effect Effect
	Reason string
}

// String returns "effect reason", as `policy test` prints it.
func (d Decision) String() string { return string(d.Effect) + " " + d.Reason }

// A Package is a parsed, compiled policy package. It is immutable and safe
// for concurrent use.
type Package struct {
	file    string
	name    string
	digest  string
	def     Decision
	rules   []*rule
	chain   cel.Program // all rules in one program; nil when they did not fit
	tests   []*testCase
	reasons []string // every reason a decision can carry, sorted
}

// A rule is one entry of the rules block.
type rule struct {
	line     int // Markdown line of the list item
	decision Decision
	when     string
	prog     cel.Program
	checked  *cel.Ast // for checkCost
	always   bool     // when is the literal true
}

// A testCase is one entry of a tests block.
type testCase struct {
	name string
	line int
	req  Request
	want Decision
}

// Parse parses and compiles the policy package src, read from filename
// (used in messages only). Any problem makes it return Errors, one per
// problem, each naming the file, the Markdown line and the rule or test.
func Parse(filename string, src []byte) (*Package, error) {
	p := newParser(filename, src)
	pkg := p.parse()
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, p.errs
	}
	sum := sha256.Sum256(src)
	pkg.digest = "sha256:" + hex.EncodeToString(sum[:])
	return pkg, nil
}

// Load reads and parses the policy package file at path: a regular file
// of at most readfile.Policy.Max bytes.
func Load(path string) (*Package, error) {
	src, err := readfile.Read(path, readfile.Policy)
	if err != nil {
		return nil, fmt.Errorf("load policy package: %w", err)
	}
	return Parse(path, src)
}

// Name returns the package name from the front matter
// ("ops-warden/ssh-signing").
func (p *Package) Name() string { return p.name }

// File returns the file name the package was parsed from.
func (p *Package) File() string { return p.file }

// Digest returns "sha256:" and the lowercase hex SHA-256 of the file bytes.
func (p *Package) Digest() string { return p.digest }

// Default returns the decision when no rule matches.
func (p *Package) Default() Decision { return p.def }

// Reasons returns, sorted, every reason a decision of this package can
// carry: the rules' reasons, the default's, and ReasonPolicyError. The
// caller may modify the slice.
func (p *Package) Reasons() []string { return slices.Clone(p.reasons) }

// NumRules returns the number of rules.
func (p *Package) NumRules() int { return len(p.rules) }

// NumTests returns the number of test cases in the tests blocks.
func (p *Package) NumTests() int { return len(p.tests) }
