package inventory

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/coulomb/flex-auth/internal/errlist"
)

// An Error is one problem in an inventory file, at a line and column
// (both counted from 1; the column in characters, as the YAML parser counts).
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error returns "FILE:LINE:COL: message", the form compilers use, so that
// editors and CI annotations can jump to the spot.
func (e *Error) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col) + ": " + e.Msg
}

// Errors is every problem found in one inventory file, sorted by position,
// one per line.
type Errors = errlist.List[*Error]

// sortErrors orders errors by position, keeping the order they were found
// in on the same spot, and drops exact repeats (a node reached through two
// aliases is checked twice).
func sortErrors(es Errors) Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	out := es[:0]
	seen := make(map[Error]bool, len(es))
	for _, e := range es {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return out
}
