package policy

import (
	"fmt"
	"strings"

	"github.com/coulomb/flex-auth/internal/errlist"
)

// An Error is one problem in a policy package, at a line of the Markdown
// file. Item names the rule or test it is about (`rule "ttl_out_of_bounds"`,
// `test "bridge may sign"`), or is empty for the package as a whole.
//
// Its message may quote the file (the value that breaks a rule, a key, a
// `when` that does not compile); its redacted form (Redacted) does not,
// for those who may read the problem but not the file: the file, the line
// and the rule broken.
type Error struct {
	File string
	Line int
	Item string
	Msg  string
	// redacted is Msg without what the file holds.
	redacted string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	if e.Item != "" {
		b.WriteString(e.Item)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Redacted returns "FILE:LINE: message" without what the file holds. The
// item is left out: its name is the file's, and the line says which it is.
func (e *Error) Redacted() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.redacted)
}

// Errors lists every problem found in one policy package, in line order,
// one per line.
type Errors = errlist.List[*Error]

// An EvalError is a rule whose `when` failed to evaluate for a request; the
// request is denied with ReasonPolicyError.
type EvalError struct {
	Rule string // the rule's reason
	Line int    // the Markdown line of the rule
	Err  error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("rule %q (line %d): %v", e.Rule, e.Line, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }
