// Package errlist is the list-of-problems error that every parser of
// outside input returns, so that one run reports every problem in a file
// rather than only the first.
package errlist

import (
	"strings"

	"github.com/coulomb/flex-auth/internal/redact"
)

// A List is every problem found in one input. It prints one problem per
// line, the way compilers do, and errors.Is and errors.As see each one.
type List[E error] []E

func (l List[E]) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (l List[E]) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Redacted returns the problems' redacted forms (redact.Message), one per
// line.
func (l List[E]) Redacted() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = redact.Message(e)
	}
	return strings.Join(lines, "\n")
}
