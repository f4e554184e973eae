package inventory

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reads YAML 1.2 with a few exceptions (docs: "YAML 1.2, and
// where the parser departs from it"). Where flex-auth can close the gap
// without parsing YAML itself, it does so here: it accepts the %YAML 1.2
// directive, and refuses the escape "\'", which YAML 1.2 does not have
// and yaml.v3 reads as "'". For the valid YAML 1.2 that yaml.v3 refuses,
// "\/" and a "?" inside a plain scalar in a flow collection, its syntax
// error gets a hint.

// directive12 returns data with a leading "%YAML 1.2" directive read as
// "%YAML 1.1". yaml.v3 refuses any version but 1.1, yet reads every
// document by the same rules whatever the directive says; the directive
// keeps its length, so that every position stays where it is. Directives
// come before the first document, after blank and comment lines only.
func directive12(data []byte) []byte {
	off := 0
	if bytes.HasPrefix(data, []byte("\uFEFF")) {
		off = 3
	}
	for off < len(data) {
		end := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end = off + i
		}
		line := data[off:end]
		off = end + 1
		if v, ok := bytes.CutPrefix(line, []byte("%YAML")); ok {
			arg := bytes.TrimLeft(v, " \t")
			if len(arg) == len(v) || !bytes.HasPrefix(arg, []byte("1.2")) ||
				len(arg) > 3 && !bytes.ContainsAny(arg[3:4], " \t\r#") {
				return data
			}
			out := bytes.Clone(data)
			out[end-len(arg)+2] = '1'
			return out
		}
		if t := bytes.TrimLeft(line, " \t\r"); len(t) > 0 && t[0] != '#' && t[0] != '%' {
			return data
		}
	}
	return data
}

// hasBadEscape reports whether data may hold the escape "\'"; only then
// does checkEscapes look for it.
func hasBadEscape(data []byte) bool { return bytes.Contains(data, []byte(`\'`)) }

// checkEscapes reports every "\'" in the double-quoted scalars under
// root. It finds each scalar where yaml.v3 says it starts, and reads it
// from there: what lies between quotes is known once the parser has
// found the quotes.
func (p *parser) checkEscapes(data []byte, root *yaml.Node) {
	var starts []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
			starts = append(starts, n)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	slices.SortFunc(starts, func(a, b *yaml.Node) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	c := newCursor(data)
	for _, n := range starts {
		if !c.seek(n.Line, n.Column) || !c.skipProperties() {
			continue
		}
		c.next() // the opening quote
		for !c.done() && c.peek() != '"' {
			if c.peek() != '\\' {
				c.next()
				continue
			}
			line, col := c.line, c.col
			c.next()
			if !c.done() && c.peek() == '\'' {
				p.errorAt(line, col, scope{}, `invalid YAML: "\'" is not an escape in YAML 1.2; write ' alone`)
			}
			c.next()
		}
	}
}

// A cursor walks data counting lines and columns as yaml.v3 does: every
// character is a column, and "\r\n", "\r", "\n", NEL, LS and PS each end
// a line.
type cursor struct {
	data      []byte
	off       int
	line, col int
}

// newCursor returns a cursor at the start of data, past a byte order
// mark, which yaml.v3 does not count as a column.
func newCursor(data []byte) cursor {
	c := cursor{data: data, line: 1, col: 1}
	if bytes.HasPrefix(data, []byte("\uFEFF")) {
		c.off = 3
	}
	return c
}

func (c *cursor) done() bool { return c.off >= len(c.data) }
func (c *cursor) peek() byte { return c.data[c.off] }
func (c *cursor) before(line, col int) bool {
	return c.line < line || c.line == line && c.col < col
}

// next moves past one character.
func (c *cursor) next() {
	if c.done() {
		return
	}
	r, size := utf8.DecodeRune(c.data[c.off:])
	if r == '\r' && c.off+1 < len(c.data) && c.data[c.off+1] == '\n' {
		size++
	}
	c.off += size
	switch r {
	case '\r', '\n', 0x85, 0x2028, 0x2029:
		c.line, c.col = c.line+1, 1
	default:
		c.col++
	}
}

// seek moves to line:col, forward only; it reports whether it got there.
func (c *cursor) seek(line, col int) bool {
	for !c.done() && c.before(line, col) {
		c.next()
	}
	return !c.done() && c.line == line && c.col == col
}

// skipProperties moves from where a node starts to its content: past its
// tag and anchor, and the blanks, line breaks and comments around them.
// It reports whether it stopped on a double quote.
func (c *cursor) skipProperties() bool {
	for !c.done() {
		switch ch := c.peek(); {
		case ch == '"':
			return true
		case ch == '!' || ch == '&':
			for !c.done() && !strings.ContainsRune(" \t\r\n", rune(c.peek())) {
				c.next()
			}
		case ch == '#':
			for !c.done() && c.peek() != '\n' && c.peek() != '\r' {
				c.next()
			}
		case strings.ContainsRune(" \t\r\n", rune(ch)):
			c.next()
		default:
			return false
		}
	}
	return false
}

// hint returns a syntax error's position and message, with a hint when
// the error comes from valid YAML 1.2 that yaml.v3 refuses: the escape
// "\/" (found from the start of the scalar yaml.v3 names, and reported
// where it is), or a "?" in a plain scalar in a flow collection, which
// yaml.v3 reads as the start of a key (on the line yaml.v3 names).
func hint(data []byte, line int, msg string) (int, int, string) {
	start := lineStart(data, line)
	if start < 0 {
		return line, 1, msg
	}
	switch msg {
	case "found unknown escape character":
		if i := firstBadEscape(data, start); i >= 0 && data[i+1] == '/' {
			c := cursor{data: data, off: start, line: line, col: 1}
			for c.off < i {
				c.next()
			}
			return c.line, c.col, msg + ` "\/": valid in YAML 1.2 and JSON, but not to the YAML parser flex-auth uses (gopkg.in/yaml.v3); write "/" alone`
		}
	case "did not find expected ',' or '}'", "did not find expected ',' or ']'":
		end := len(data)
		if i := bytes.IndexAny(data[start:], "\r\n"); i >= 0 {
			end = start + i
		}
		if bytes.IndexByte(data[start:end], '?') >= 0 {
			return line, 1, msg + ` (a "?" in an unquoted value inside {...} or [...] is valid YAML 1.2, but the YAML parser flex-auth uses (gopkg.in/yaml.v3) takes it for a key: quote the value)`
		}
	}
	return line, 1, msg
}

// firstBadEscape returns the offset of the first backslash from start on
// that yaml.v3 does not take as the start of an escape, or -1.
func firstBadEscape(data []byte, start int) int {
	for i := start; i+1 < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if !strings.ContainsRune("0abt\tnvfre \"'\\N_LPxuU\r\n", rune(data[i+1])) {
			return i
		}
		i++
	}
	return -1
}

// lineStart returns the offset of line in data, counting lines as yaml.v3
// does, or -1 when data is shorter.
func lineStart(data []byte, line int) int {
	c := newCursor(data)
	for !c.done() && c.line < line {
		c.next()
	}
	if c.line != line {
		return -1
	}
	return c.off
}
