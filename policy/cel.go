package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/internal/suggest"
)

// The CEL variables a `when` expression can use.
const (
	varSubject  = "subject"
	varAction   = "action"
	varResource = "resource"
	varContext  = "context"
	varActor    = "actor"
)

// Limits that keep a hostile or careless package from hurting the service;
// CostLimit (cost.go) is the other.
const (
	// maxWhenLen bounds the size of one `when` expression, in code points.
	maxWhenLen = 4096

	// maxRegexProgram bounds a regular expression's compiled program, in
	// RE2 instructions: a literal pattern over it is refused when the
	// package loads, any other when it is matched (policy_error). Matching
	// costs up to the program's size per byte of the text.
	maxRegexProgram = 5000
)

// The CEL variables of the AuthZEN model's `when` expressions, besides
// subject, action, resource and context.
const varData = "data"

// celEnv is the CEL environment registry-model packages compile in.
// Building one takes milliseconds, and an Env is safe for concurrent use.
var celEnv = sync.OnceValues(func() (*cel.Env, error) { return newEnv(ModelRegistry) })

// authzenEnv is the CEL environment AuthZEN-model packages compile in.
var authzenEnv = sync.OnceValues(func() (*cel.Env, error) { return newEnv(ModelAuthZEN) })

// envFor returns the CEL environment of model m.
func envFor(m Model) (*cel.Env, error) {
	if m == ModelAuthZEN {
		return authzenEnv()
	}
	return celEnv()
}

func newEnv(m Model) (*cel.Env, error) {
	var vars []cel.EnvOption
	switch m {
	case ModelAuthZEN:
		entity := cel.MapType(cel.StringType, cel.DynType)
		vars = []cel.EnvOption{
			cel.Variable(varSubject, entity),
			cel.Variable(varAction, entity),
			cel.Variable(varResource, entity),
			cel.Variable(varContext, cel.MapType(cel.StringType, cel.DynType)),
			// type -> id -> properties
			cel.Variable(varData, cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.DynType)))),
		}
	default:
		vars = []cel.EnvOption{
			cel.Variable(varSubject, cel.StringType),
			cel.Variable(varAction, cel.StringType),
			cel.Variable(varResource, cel.StringType),
			cel.Variable(varContext, cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable(varActor, cel.DynType),
		}
	}
	return cel.NewEnv(append(vars,
		// JSON numbers arrive as int or double: let 1.5 < 2 mean what it says.
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(maxWhenLen),
		cel.RegexProgramSizeLimit(maxRegexProgram),
	)...)
}

// compile parses and type-checks a `when` expression and plans its program.
// It returns the checked expression, for estimating its cost, and reports
// whether the expression is the constant true.
func compile(m Model, src string) (prog cel.Program, checked *cel.Ast, always bool, err error) {
	env, err := envFor(m)
	if err != nil {
		return nil, nil, false, fmt.Errorf("set up CEL: %w", err)
	}
	checked, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, nil, false, issuesError(src, iss)
	}
	if t := checked.OutputType(); !t.IsExactType(cel.BoolType) {
		hint := ""
		if t.IsExactType(cel.DynType) {
			hint = " (compare it, for example `... == true`)"
		}
		return nil, nil, false, fmt.Errorf("must be a bool expression, got %s%s", cel.FormatCELType(t), hint)
	}
	e := checked.NativeRep().Expr()
	if err := lint(e, nil, memberVars(m)); err != nil {
		return nil, nil, false, err
	}
	// No cost limit is counted while deciding: checkCost proves one when
	// the package is bound to a registry.
	prog, err = env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, false, redact.Errorf("plan: %v", redact.Value(err))
	}
	always = e.Kind() == celast.LiteralKind && e.AsLiteral() == types.True
	return prog, checked, always, nil
}

// issuesError turns CEL's multi-line issue report into one line per
// problem, joined by "; ", with the position inside the expression. CEL's
// words quote the expression (an undeclared name, the token it could not
// read): the redacted form says where each problem is, not what.
func issuesError(src string, iss *cel.Issues) error {
	var msgs, redacted []string
	for _, e := range iss.Errors() {
		pos := ""
		if loc := e.Location; loc != nil && loc.Line() > 0 {
			if strings.Contains(src, "\n") {
				pos = fmt.Sprintf(" (expression line %d, column %d)", loc.Line(), loc.Column()+1)
			} else {
				pos = fmt.Sprintf(" (column %d)", loc.Column()+1)
			}
		}
		msgs = append(msgs, e.Message+pos)
		redacted = append(redacted, "not valid CEL"+pos)
	}
	if len(msgs) == 0 {
		return redact.Error(errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " ")), "not valid CEL")
	}
	return redact.Error(errors.New(strings.Join(msgs, "; ")), strings.Join(redacted, "; "))
}

// memberVars returns the variables of model m that are maps with fixed
// members, and their members: the registry model's actor, the AuthZEN
// model's entities.
func memberVars(m Model) map[string][]string {
	if m == ModelAuthZEN {
		return map[string][]string{varSubject: entityMembers, varResource: entityMembers, varAction: actionMembers}
	}
	return map[string][]string{varActor: actorMembers}
}

// lint finds what the type checker cannot: `actor` is dyn, and an entity a
// map of dyn, so a misspelt member (actor.max_ttl, subject.propertis)
// would compile and fail on every request. vars are the variables with
// fixed members (memberVars); locals are the comprehension variables in
// scope, which may shadow them.
func lint(e celast.Expr, locals []string, vars map[string][]string) error {
	members := func(x celast.Expr) (string, []string) {
		if x.Kind() != celast.IdentKind || slices.Contains(locals, x.AsIdent()) {
			return "", nil
		}
		return x.AsIdent(), vars[x.AsIdent()]
	}
	member := func(v string, known []string, name string) error {
		if slices.Contains(known, name) {
			return nil
		}
		hint := ""
		if s := suggest.Closest(name, known); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return redact.Errorf("%s has no member %q%s; members: %s", v, redact.Value(name), hint, strings.Join(known, ", "))
	}
	lint := func(e celast.Expr, locals []string) error { return lint(e, locals, vars) }
	switch e.Kind() {
	case celast.SelectKind:
		sel := e.AsSelect()
		if v, known := members(sel.Operand()); known != nil {
			if err := member(v, known, sel.FieldName()); err != nil {
				return err
			}
		}
		return lint(sel.Operand(), locals)
	case celast.CallKind:
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() == operators.Index && len(args) == 2 && args[1].Kind() == celast.LiteralKind {
			if v, known := members(args[0]); known != nil {
				if s, ok := args[1].AsLiteral().(types.String); ok {
					if err := member(v, known, string(s)); err != nil {
						return err
					}
				}
			}
		}
		if err := lintTimeZone(call); err != nil {
			return err
		}
		if call.IsMemberFunction() {
			if err := lint(call.Target(), locals); err != nil {
				return err
			}
		}
		for _, a := range args {
			if err := lint(a, locals); err != nil {
				return err
			}
		}
	case celast.ListKind:
		for _, x := range e.AsList().Elements() {
			if err := lint(x, locals); err != nil {
				return err
			}
		}
	case celast.MapKind:
		for _, entry := range e.AsMap().Entries() {
			me := entry.AsMapEntry()
			if me.Key().Kind() != celast.LiteralKind {
				// Building the map hashes the key, which cel-go prices at
				// nothing whatever its size (see checkCost).
				return errors.New("the keys of a map literal must be literals")
			}
			if err := lint(me.Key(), locals); err != nil {
				return err
			}
			if err := lint(me.Value(), locals); err != nil {
				return err
			}
		}
	case celast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			if err := lint(f.AsStructField().Value(), locals); err != nil {
				return err
			}
		}
	case celast.ComprehensionKind:
		c := e.AsComprehension()
		if err := lint(c.IterRange(), locals); err != nil {
			return err
		}
		if err := lint(c.AccuInit(), locals); err != nil {
			return err
		}
		inner := append(slices.Clip(locals), c.IterVar(), c.AccuVar())
		if c.HasIterVar2() {
			inner = append(inner, c.IterVar2())
		}
		for _, x := range []celast.Expr{c.LoopCondition(), c.LoopStep(), c.Result()} {
			if err := lint(x, inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// timestampGetters are the timestamp methods that take a time zone.
var timestampGetters = []string{"getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate",
	"getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds"}

// lintTimeZone refuses a time zone that is not a literal UTC offset: cel-go
// loads a named zone (time.LoadLocation) from the time zone database, a
// file, on every call, and a request must never read a file.
func lintTimeZone(call celast.CallExpr) error {
	if !call.IsMemberFunction() || len(call.Args()) != 1 || !slices.Contains(timestampGetters, call.FunctionName()) {
		return nil
	}
	arg := call.Args()[0]
	if arg.Kind() == celast.LiteralKind {
		if s, ok := arg.AsLiteral().(types.String); ok && strings.Contains(string(s), ":") {
			return nil
		}
	}
	return fmt.Errorf("%s: the time zone must be a literal UTC offset such as '+01:00' or '-05:30': a zone name is read from the time zone database on every call", call.FunctionName())
}

// chainEnvs compile the chain of all rules, which may be longer than one
// `when` may be.
var (
	chainEnv        = sync.OnceValues(func() (*cel.Env, error) { return extendChain(celEnv()) })
	authzenChainEnv = sync.OnceValues(func() (*cel.Env, error) { return extendChain(authzenEnv()) })
)

func extendChain(env *cel.Env, err error) (*cel.Env, error) {
	if err != nil {
		return nil, err
	}
	return env.Extend(cel.ParserExpressionSizeLimit(-1))
}

// compileChain compiles the rules into one program that returns the index
// of the first rule whose `when` is true, or -1:
//
//	(w0) ? 0 : (w1) ? 1 : ... : -1
//
// Its result is the same as evaluating the rules one by one, as CEL's
// conditional evaluates its condition first and then one branch only; an
// error in a condition is the chain's error. One program costs one
// evaluation frame instead of one per rule, which halves Decide's time. It
// returns nil when the chain does not compile (a package of hundreds of
// rules nests deeper than the CEL parser allows); the rules then run one
// by one. Each `when` compiled alone, so wrapping it in parentheses on lines
// of its own cannot change its meaning: a trailing // comment ends at the
// newline. The chain costs what its rules together do (checkCost).
func compileChain(m Model, rules []*rule) cel.Program {
	envOf := chainEnv
	if m == ModelAuthZEN {
		envOf = authzenChainEnv
	}
	env, err := envOf()
	if err != nil || len(rules) == 0 {
		return nil
	}
	var b strings.Builder
	for i, r := range rules {
		fmt.Fprintf(&b, "(\n%s\n) ? %d : ", r.when, i)
	}
	b.WriteString("-1")
	checked, iss := env.Compile(b.String())
	if iss != nil && iss.Err() != nil || !checked.OutputType().IsExactType(cel.IntType) {
		return nil
	}
	prog, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil
	}
	return prog
}
