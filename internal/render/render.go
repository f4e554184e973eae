// Package render holds what the reports of drift and replay are rendered
// with: their formats, and the escaping that keeps text from files,
// services and clients inert in Markdown that GitHub renders (comments,
// job summaries) and people also read raw, and in GitHub workflow
// commands and JSON: code spans and fences that no backtick in the text
// can close, table cells that no | or newline can break, plain text that
// no character turns into markup, commands no message can end early, all
// after the characters a terminal would act on are escaped (termsafe),
// which JSON escapes too.
package render

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coulomb/flex-auth/internal/termsafe"
)

// A Format is an output format of a report.
type Format string

// The report formats.
const (
	Text     Format = "text"
	JSON     Format = "json"
	Markdown Format = "markdown"
	GitHub   Format = "github"
)

// Formats lists the formats in the order the help shows them.
var Formats = []Format{Text, JSON, Markdown, GitHub}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown format %q: want text, json, markdown or github", s)
}

// WorkflowData makes s one workflow command message: the characters a log
// viewer or terminal would act on, CR and LF among them, are escaped
// (termsafe.Line), so that no value can end the command or start another,
// and % is escaped as the runner's toolkit escapes it.
func WorkflowData(s string) string { return strings.ReplaceAll(termsafe.Line(s), "%", "%25") }

// WorkflowProperty escapes a workflow command property value: as data,
// and also : and , which separate properties.
func WorkflowProperty(s string) string { return propertyEscaper.Replace(termsafe.Line(s)) }

var propertyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", ",", "%2C")

// Code formats s as a Markdown code span, fenced by more backticks than s
// contains in a row.
func Code(s string) string {
	s = termsafe.Line(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// Fence returns a code fence longer than any backtick run in s.
func Fence(s string) string {
	return strings.Repeat("`", max(3, longestRun(s, '`')+1))
}

func longestRun(s string, c byte) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// Cell makes text safe inside a table cell: a | would end the cell, a
// newline the row.
func Cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// Plain escapes the characters that would turn plain text into markup.
func Plain(s string) string {
	return escaper.Replace(termsafe.Line(s))
}

var escaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "`", "\\`", "<", "&lt;", "[", `\[`)

// Plural returns n and what, with an s unless n is 1: "1 actor", "3
// findings".
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// Cut cuts s to at most n bytes at a rune boundary.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// EscapeJSON writes as \u escapes, in encoded JSON, the characters that a
// terminal would act on and encoding/json leaves as they are (DEL, the C1
// controls, the bidirectional controls): the JSON means the same, and
// prints safely.
func EscapeJSON(data []byte) []byte {
	var out []byte
	done := 0
	for i := 0; i < len(data); {
		if data[i] < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if termsafe.Escaped(r) {
			out = append(out, data[done:i]...)
			out = fmt.Appendf(out, `\u%04x`, r)
			done = i + size
		}
		i += size
	}
	if out == nil {
		return data
	}
	return append(out, data[done:]...)
}
