package policy

import (
	"fmt"
	"math"
	"regexp/syntax"
	"strconv"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"github.com/coulomb/flex-auth/entities"
	"github.com/coulomb/flex-auth/registry"
)

// What a package may cost. A package is bound to a registry only when the
// cost of deciding the worst request it could be asked, all its rules
// together, is proven to be within CostLimit; nothing is counted while it
// decides. The proof is cel-go's static cost estimate, in which every value
// a request carries has MaxRequestBytes code points, elements or entries,
// and every actor value the size of the registry's largest, with the
// operations cel-go's model prices below what they really cost priced by
// what they cost here (costOptions).
//
// Why not a limit counted while deciding (cel.CostLimit): cel-go counts the
// cost of an operation only once it has run, so one operation on values
// built within the limit (a regular expression on a concatenation, a
// membership test in a list concatenated with itself) runs to its end
// whatever it costs; and its counter itself measures strings by counting
// their characters, work it does not count: a loop comparing a 60 KiB
// context string with a short one ran for a second within the old limit of
// 100,000 units. A proof at load time costs nothing per request, and a
// package that could burn the server is refused before it serves, with the
// rule and its line, rather than denying requests with policy_error later.
const (
	// MaxRequestBytes is the largest request a package is proven to
	// decide within CostLimit: the HTTP API's limit on a request body
	// (CONTRACT section 6). A string decoded from such a body has at most
	// as many code points, and a list or map at most as many elements or
	// entries, as the body has bytes. Larger requests, which only a
	// program calling Evaluator.Decide itself can make, have no bound.
	MaxRequestBytes = 64 << 10

	// CostLimit is the most, in CEL cost units, that a package may cost
	// to decide one request of at most MaxRequestBytes, all its rules
	// together. A unit is about one operation, or ten bytes of a string
	// compared or scanned. A request whose evaluation fails is evaluated
	// twice (the rules one by one name the failing rule). On the
	// project's 2-core machine, the worst requests constructed against
	// packages at the limit cost about 12 ns of CPU (15 at worst) and 4
	// bytes of allocation per unit: 6 to 8 ms and 2 MB
	// (BenchmarkWorstRequest, docs/policy-packages.md). The ops-warden example is estimated at
	// 6,653 units; a single loop over a request list with a cheap body,
	// at 458,755, fits on its own.
	CostLimit = 500_000
)

// The cost factors of the operations priced here, in units per byte:
// what they cost on the project's machine relative to what cel-go's model
// charges for scanning a string (0.1 unit a byte, about a nanosecond).
const (
	// costPerByteScanned is cel-go's factor for a string scan.
	costPerByteScanned = cost.StringTraversalCostFactor
	// costPerByteCopied prices concatenating strings: allocating and
	// copying the result, and collecting it later.
	costPerByteCopied = 0.25
	// costPerByteDecoded prices counting the code points of a string: up
	// to 4 ns a byte.
	costPerByteDecoded = 0.25
	// costPerByteParsed prices parsing a number, timestamp or duration
	// from a string: strconv and time read every digit, slower than a scan.
	costPerByteParsed = 1.0
	// costPerPatternByte prices compiling a regular expression that is
	// not a literal, every time it is matched.
	costPerPatternByte = 1.0
	// costPerRegexStep prices one instruction of a regular expression's
	// program run on one character: 20 to 35 ns.
	costPerRegexStep = 2.0
)

// A sizeBounds bounds the size of every value a rule can read: it is the
// cost.Estimator of a package bound to a registry.
type sizeBounds struct {
	// model is the package's, which says what its variables are.
	model Model
	// request bounds the size of a request value: MaxRequestBytes.
	request uint64
	// actor bounds the size of an actor value: its members, its subjects,
	// and its longest string, in the registry bound.
	actor uint64
	// actorContent bounds an actor's whole content: the bytes of all its
	// strings, plus one for every member and subject.
	actorContent uint64

	// data bounds the size of any value of an entities document: its
	// number of types, of ids of a type, of properties of an entity, a
	// list's elements, a string's bytes. entity bounds one entity's
	// properties' content, dataContent the whole document's.
	data, entity, dataContent uint64
}

// registryBounds returns the sizeBounds of rules reading the actors of s.
func registryBounds(s *registry.Snapshot) sizeBounds {
	b := sizeBounds{model: ModelRegistry, request: MaxRequestBytes, actor: uint64(len(actorMembers))}
	for i := range s.Actors {
		a := &s.Actors[i]
		content := uint64(len(actorMembers)) + uint64(len(a.Name)+len(a.Type)+len(a.Principal)+len(a.Subjects))
		b.actor = max(b.actor, uint64(len(a.Name)), uint64(len(a.Type)), uint64(len(a.Principal)), uint64(len(a.Subjects)))
		for _, sub := range a.Subjects {
			b.actor = max(b.actor, uint64(len(sub)))
			content += uint64(len(sub))
		}
		b.actorContent = max(b.actorContent, content)
	}
	return b
}

// entitiesBounds returns the sizeBounds of rules reading the entities of
// d.
func entitiesBounds(d *entities.Document) sizeBounds {
	b := sizeBounds{model: ModelAuthZEN, request: MaxRequestBytes}
	b.data = uint64(len(d.Types()))
	for _, typ := range d.Types() {
		ids := d.IDs(typ)
		b.data = max(b.data, uint64(len(ids)), uint64(len(typ)))
		b.dataContent = cost.SafeAdd(b.dataContent, uint64(len(typ)), 1)
		for _, id := range ids {
			props, _ := d.Properties(typ, id)
			size, content := valueBounds(props)
			b.data = max(b.data, size, uint64(len(id)))
			b.entity = max(b.entity, content)
			b.dataContent = cost.SafeAdd(b.dataContent, content, uint64(len(id)), 1)
		}
	}
	return b
}

// valueBounds returns the largest size (entries, elements or bytes) of v
// and of any value in it, and v's content: the bytes of its strings, plus
// one for every other value, entry and element.
func valueBounds(v any) (size, content uint64) {
	switch v := v.(type) {
	case string:
		return uint64(len(v)), uint64(len(v))
	case map[string]any:
		size, content = uint64(len(v)), 1
		for k, x := range v {
			s, c := valueBounds(x)
			size = max(size, s, uint64(len(k)))
			content = cost.SafeAdd(content, c, uint64(len(k)), 1)
		}
	case []any:
		size, content = uint64(len(v)), 1
		for _, x := range v {
			s, c := valueBounds(x)
			size = max(size, s)
			content = cost.SafeAdd(content, c, 1)
		}
	default:
		return 1, 1
	}
	return size, content
}

// origin returns the bound on the size of the value at path, by the
// variable the path starts from, or false for a value the rule computed.
func (b sizeBounds) origin(path []string) (size, content uint64, ok bool) {
	if len(path) == 0 {
		return 0, 0, false
	}
	if b.model == ModelAuthZEN {
		switch path[0] {
		case varSubject, varResource, varAction:
			// What the request says, and for an entity the properties
			// the document gives it beside.
			return cost.SafeAdd(b.request, b.data), cost.SafeAdd(b.request, b.entity), true
		case varContext:
			return b.request, b.request, true
		case varData:
			return b.data, b.dataContent, true
		}
		return 0, 0, false
	}
	switch path[0] {
	case varSubject, varAction, varResource, varContext:
		// The whole body is at most MaxRequestBytes: so is any part of it.
		return b.request, b.request, true
	case varActor:
		return b.actor, b.actorContent, true
	}
	return 0, 0, false
}

// EstimateSize implements cost.Estimator.
func (b sizeBounds) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	size, _, ok := b.origin(n.Path())
	if !ok {
		return nil
	}
	s := cost.RangedSizeEstimate(0, size)
	return &s
}

// EstimateCallCost implements cost.Estimator: calls are priced by
// cel-go's model and costOptions.
func (sizeBounds) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// size bounds the size of n: code points, elements or entries.
func (b sizeBounds) size(est cost.Estimator, n cost.AstNode) uint64 {
	return cost.EstimateSize(est, n).Max
}

// content bounds what comparing or hashing n reads: the size of a string,
// one for any other scalar, and for a list or map everything in it, down
// to its deepest strings.
func (b sizeBounds) content(est cost.Estimator, n cost.AstNode) uint64 {
	if _, content, ok := b.origin(n.Path()); ok {
		return content
	}
	if t := n.Type(); t != nil {
		switch t.Kind() {
		case types.BoolKind, types.IntKind, types.UintKind, types.DoubleKind, types.NullTypeKind,
			types.TimestampKind, types.DurationKind, types.TypeKind:
			return 1
		case types.StringKind, types.BytesKind:
			return b.size(est, n)
		}
	}
	if e := n.Expr(); e != nil && e.Kind() == celast.LiteralKind {
		return max(1, cost.EstimateSize(est, n).Max)
	}
	return deepContent(cost.EstimateSize(est, n), 0)
}

// deepContent bounds the content of a computed value from its size
// estimate: its entries times the content of each. A container whose
// elements are of unknown size is unbounded; inside a container, a value
// without element sizes is taken for a scalar or a string, as cel-go's
// models size every container they build.
func deepContent(s cost.SizeEstimate, depth int) uint64 {
	if s.Elem == nil && s.Key == nil {
		if depth > 0 {
			return max(1, s.Max) // a scalar or a string inside a container
		}
		return math.MaxUint64 // a container whose elements nobody sized
	}
	if depth > 8 {
		return math.MaxUint64
	}
	entry := uint64(1)
	if s.Elem != nil {
		entry = cost.SafeAdd(entry, deepContent(*s.Elem, depth+1))
	}
	if s.Key != nil {
		entry = cost.SafeAdd(entry, deepContent(*s.Key, depth+1))
	}
	return cost.SafeMultiply(s.Max, entry)
}

// costOptions price the operations whose cost cel-go's model leaves out or
// puts lower than what they do in Go:
//
//   - ==, != on lists and maps compare every element, down to the
//     strings; cel-go counts the elements of the top level only;
//   - x in list compares x with every element, or hashes it; cel-go
//     counts elements;
//   - x in map and map[x] hash x; cel-go counts one;
//   - size(string) counts the code points of the string; cel-go counts one;
//   - s + t allocates and copies; cel-go counts a scan;
//   - int, uint, double, timestamp and duration of a string parse all of
//     it; cel-go counts one;
//   - s.startsWith(p) and s.endsWith(p) read the shorter string; cel-go
//     counts the longer;
//   - s.matches(re) runs the regular expression's program on every
//     character of s (see matches); cel-go counts 0.025 units per
//     character and character of the pattern, hundreds of times too low
//     for a pattern such as [ab]{100}c.
func (b sizeBounds) costOptions() []cost.Option {
	std := cost.StandardOverloadEstimators()
	// withStd adds extra to what cel-go's own model, if it has one, says
	// the call costs, keeping the size of the result it derives.
	withStd := func(id string, extra func(est cost.Estimator, target *cost.AstNode, args []cost.AstNode) uint64) cost.Option {
		return cost.OverloadCostEstimate(id, func(est cost.Estimator, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
			ce := cost.CallEstimate{CostEstimate: cost.FixedCostEstimate(cost.CallCost)}
			if f := std[id]; f != nil {
				if s := f(est, target, args); s != nil {
					ce = *s
				}
			}
			ce.Max = cost.SafeAdd(ce.Max, extra(est, target, args))
			return &ce
		})
	}
	scan := func(n uint64) uint64 { return cost.SafeMultiplyByFactor(n, costPerByteScanned) }
	var opts []cost.Option
	for _, id := range []string{overloads.Equals, overloads.NotEquals} {
		opts = append(opts, withStd(id, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
			return scan(min(b.content(est, args[0]), b.content(est, args[1])))
		}))
	}
	// x in list reads x (hashes it, for a list of literals) and compares
	// it with every element.
	opts = append(opts, withStd(overloads.InList, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
		x := b.content(est, args[0])
		each := cost.SafeMultiply(b.size(est, args[1]), x)
		return scan(cost.SafeAdd(x, min(b.content(est, args[1]), each)))
	}))
	// x in m: args are x, m; m[k]: args are m, k.
	opts = append(opts,
		withStd(overloads.InMap, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
			return scan(b.content(est, args[0]))
		}),
		withStd(overloads.IndexMap, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
			return scan(b.content(est, args[1]))
		}))
	decode := func(n uint64) uint64 { return cost.SafeMultiplyByFactor(n, costPerByteDecoded) }
	opts = append(opts,
		withStd(overloads.SizeString, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
			return decode(b.size(est, args[0]))
		}),
		withStd(overloads.SizeStringInst, func(est cost.Estimator, target *cost.AstNode, _ []cost.AstNode) uint64 {
			return decode(b.size(est, *target))
		}))
	// cel-go counts a scan of both strings; allocating and copying the
	// result costs more.
	opts = append(opts, withStd(overloads.AddString, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
		return cost.SafeMultiplyByFactor(cost.SafeAdd(b.size(est, args[0]), b.size(est, args[1])), costPerByteCopied-costPerByteScanned)
	}))
	for _, id := range []string{overloads.StringToInt, overloads.StringToUint, overloads.StringToDouble,
		overloads.StringToTimestamp, overloads.StringToDuration} {
		opts = append(opts, withStd(id, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) uint64 {
			return cost.SafeMultiplyByFactor(b.size(est, args[0]), costPerByteParsed)
		}))
	}
	// A prefix or suffix test reads the shorter of the two strings;
	// cel-go counts the whole of the longer.
	for _, id := range []string{overloads.StartsWithString, overloads.EndsWithString} {
		opts = append(opts, cost.OverloadCostEstimate(id, func(est cost.Estimator, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
			read := min(b.size(est, *target), b.size(est, args[0]))
			return cost.NewCallEstimate(cost.FixedCostEstimate(cost.SafeAdd(cost.CallCost, scan(read))), nil)
		}))
	}
	// matches(s, re) and s.matches(re) replace cel-go's price.
	opts = append(opts,
		cost.OverloadCostEstimate(overloads.Matches, func(est cost.Estimator, _ *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
			return b.matches(est, args[0], args[1])
		}),
		cost.OverloadCostEstimate(overloads.MatchesString, func(est cost.Estimator, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
			return b.matches(est, *target, args[0])
		}))
	return opts
}

// matches prices matching text against a regular expression. Go's RE2
// runs every instruction of the program on every character of the text,
// at 20 to 35 ns a step on the project's machine (costPerRegexStep units):
// a step per character the match can reach, which for a literal pattern
// that is anchored at the start and matches at most w characters is w+1,
// else the whole text. A pattern that is not a literal may have up to
// maxRegexProgram instructions and is compiled on every match.
func (b sizeBounds) matches(est cost.Estimator, text, pattern cost.AstNode) *cost.CallEstimate {
	chars := b.size(est, text)
	steps, compile := uint64(maxRegexProgram), cost.SafeMultiplyByFactor(b.size(est, pattern), costPerPatternByte)
	if e := pattern.Expr(); e != nil && e.Kind() == celast.LiteralKind {
		if s, ok := e.AsLiteral().(types.String); ok {
			if re, err := syntax.Parse(string(s), syntax.Perl); err == nil {
				re = re.Simplify()
				if prog, err := syntax.Compile(re); err == nil {
					steps, compile = uint64(len(prog.Inst)), 0
					if prog.StartCond()&syntax.EmptyBeginText != 0 {
						chars = min(chars, cost.SafeAdd(maxWidth(re), 1))
					}
				}
			}
		}
	}
	run := cost.SafeMultiplyByFactor(cost.SafeMultiply(cost.SafeAdd(chars, 1), steps), costPerRegexStep)
	return cost.NewCallEstimate(cost.FixedCostEstimate(cost.SafeAdd(cost.CallCost, run, compile)), nil)
}

// maxWidth returns the most characters re can match, or math.MaxUint64.
func maxWidth(re *syntax.Regexp) uint64 {
	switch re.Op {
	case syntax.OpLiteral:
		return uint64(len(re.Rune))
	case syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return 1
	case syntax.OpCapture:
		return maxWidth(re.Sub[0])
	case syntax.OpQuest:
		return maxWidth(re.Sub[0])
	case syntax.OpRepeat:
		if re.Max < 0 {
			return math.MaxUint64
		}
		return cost.SafeMultiply(uint64(re.Max), maxWidth(re.Sub[0]))
	case syntax.OpConcat:
		var w uint64
		for _, sub := range re.Sub {
			w = cost.SafeAdd(w, maxWidth(sub))
		}
		return w
	case syntax.OpAlternate:
		var w uint64
		for _, sub := range re.Sub {
			w = max(w, maxWidth(sub))
		}
		return w
	case syntax.OpStar, syntax.OpPlus:
		return math.MaxUint64
	}
	return 0 // empty matches and assertions: ^ $ \b
}

// A costModel estimates what `when` expressions cost with the actors of
// one registry.
type costModel struct {
	env    *cel.Env
	bounds sizeBounds
	opts   []cost.Option
}

func newCostModel(b sizeBounds) (*costModel, error) {
	env, err := envFor(b.model)
	if err != nil {
		return nil, err
	}
	return &costModel{env: env, bounds: b, opts: b.costOptions()}, nil
}

// estimate returns the most the checked `when` expression can cost, in
// CEL cost units, to decide a request of at most MaxRequestBytes.
func (m *costModel) estimate(checked *cel.Ast) (uint64, error) {
	est, err := m.env.EstimateCost(checked, m.bounds, m.opts...)
	if err != nil {
		return 0, err
	}
	return est.Max, nil
}

// checkCost proves that p decides any request of at most MaxRequestBytes,
// with the data b bounds, within CostLimit, or returns an *Error naming
// the most expensive rule.
func checkCost(p *Package, b sizeBounds) error {
	m, err := newCostModel(b)
	if err != nil {
		return err
	}
	var total, worst uint64
	var worstRule *rule
	for _, r := range p.rules {
		c, err := m.estimate(r.checked)
		if err != nil {
			return &Error{File: p.file, Line: r.line, Item: ruleItem(r), Msg: fmt.Sprintf("when: estimate its cost: %v", err),
				redacted: "when: its cost cannot be estimated"}
		}
		total = cost.SafeAdd(total, c)
		if worstRule == nil || c > worst {
			worst, worstRule = c, r
		}
	}
	if total <= CostLimit {
		return nil
	}
	msg := fmt.Sprintf("when: may cost %s units to decide a request of 64 KiB; a package may cost at most %s",
		units(worst), units(CostLimit))
	if total != worst {
		msg += fmt.Sprintf(" (its rules together: %s)", units(total))
	}
	msg += ". Loops (all, exists, map, filter) over request values, long chains of +, and regular expressions over request strings are the usual causes: see docs/policy-packages.md"
	return &Error{File: p.file, Line: worstRule.line, Item: ruleItem(worstRule), Msg: msg, redacted: msg}
}

// units formats a cost for messages: "1,234,567", or "an unbounded
// number of".
func units(n uint64) string {
	if n == math.MaxUint64 {
		return "an unbounded number of"
	}
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ruleItem names r in messages, as the parser does.
func ruleItem(r *rule) string { return fmt.Sprintf("rule %q", r.decision.Reason) }
