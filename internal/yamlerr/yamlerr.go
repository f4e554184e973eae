// Package yamlerr reads the position out of gopkg.in/yaml.v3's syntax
// errors, for the parsers that report problems as FILE:LINE (inventory,
// policy packages).
package yamlerr

import (
	"strconv"
	"strings"
)

// Line splits a yaml.v3 syntax error ("yaml: line N: message") into its
// 1-based line and its message. ok is false when the error names no line;
// msg is then the error without its "yaml: " prefix.
//
// yaml.v3 counts lines from 1 in its scanner's errors but from 0 in its
// parser's; Line corrects the latter.
func Line(err error) (line int, msg string, ok bool) {
	msg, _ = strings.CutPrefix(err.Error(), "yaml: ")
	rest, found := strings.CutPrefix(msg, "line ")
	if !found {
		return 0, msg, false
	}
	num, after, found := strings.Cut(rest, ": ")
	n, convErr := strconv.Atoi(num)
	if !found || convErr != nil {
		return 0, msg, false
	}
	if parserProblem(after) {
		n++
	}
	return n, after, true
}

// parserProblem reports whether msg is one of the problems yaml.v3's
// parser (rather than its scanner) reports.
func parserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>",
		"did not find expected <document start>",
		"found undefined tag handle",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}
