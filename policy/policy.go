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

// A Model is what a package's rules read, which the data its front matter
// names decides.
type Model string

// The two models.
const (
	// ModelRegistry is CONTRACT section 3's: the strings subject, action
	// and resource, the context, and actor, the registry entry named by
	// the resource. Its data is a registry snapshot; it answers
	// POST /v1/check, and AuthZEN requests through Access.Request.
	ModelRegistry Model = "registry"
	// ModelAuthZEN reads AuthZEN's entities: subject and resource (type,
	// id, properties), action (name, properties), the context, and data,
	// the entities document. It answers AuthZEN requests only.
	ModelAuthZEN Model = "authzen"
)

// The kinds of data a package's front matter can name.
const (
	DataRegistry = "registry"
	DataEntities = "entities"
)

// ActorType is the AuthZEN resource type of a registry entry: a registry
// model package decides resources of this type only.
const ActorType = "actor"

// DataRef is the data a package's front matter names: its kind
// (DataRegistry or DataEntities) and the file, a name in the package's
// directory. The zero DataRef is a registry given from outside (serve
// --registry, policy test --registry).
type DataRef struct {
	Kind string
	File string
}

// Request is one question. Context holds JSON-decoded values: int64 for
// integral JSON numbers, float64 for other numbers, string, bool, nil,
// []any, map[string]any. Context may be nil.
type Request struct {
	Subject, Action, Resource string
	Context                   map[string]any
	// ResourceType is the AuthZEN type of the resource, or "" for a
	// /v1/check request. A resource of another type than ActorType names
	// no actor.
	ResourceType string
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
	model   Model
	data    DataRef
	types   []string // resource_types, sorted; nil when none is declared
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
	name   string
	line   int
	req    Request
	access *Access // the request in AuthZEN's form; nil for the /v1/check form
	want   Decision
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

// Model returns what the package's rules read.
func (p *Package) Model() Model { return p.model }

// Data returns the data the front matter names; the zero DataRef when it
// names none.
func (p *Package) Data() DataRef { return p.data }

// ResourceTypes returns the AuthZEN resource types the package decides,
// sorted: ActorType for a registry model package, the front matter's
// resource_types for an AuthZEN one (nil when it declares none). The
// caller must not modify the slice.
func (p *Package) ResourceTypes() []string {
	if p.model == ModelRegistry {
		return registryTypes
	}
	return p.types
}

var registryTypes = []string{ActorType}

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
