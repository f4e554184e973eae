// Package termsafe makes text that comes from files and remote answers
// safe to print on a terminal or in a CI log. A terminal acts on control
// characters (an ESC sequence clears the screen or recolours the text, a
// CR moves back over what was printed, BEL rings), a log viewer renders
// ESC colour sequences, and Unicode's bidirectional controls reorder what
// a reader sees (Trojan Source, CVE-2021-42574). termsafe shows them as
// Go escapes instead (\x1b, \r, \u202e), so that what is printed is what
// was there, and nothing printed can rewrite the lines around it.
package termsafe

import (
	"strings"
	"unicode/utf8"
)

// Line returns s with every character that a terminal or a log viewer
// would act on escaped, newlines included: the result is one line. Tabs
// stay: they only move the cursor forward.
func Line(s string) string { return escape(s, false) }

// Text returns s escaped as by Line but for newlines: each line of s
// stays one line, and nothing else can start or rewrite one.
func Text(s string) string { return escape(s, true) }

// Escaped reports whether r is a character that Line escapes. Line also
// escapes the bytes of s that are not UTF-8.
func Escaped(r rune) bool {
	switch {
	case r < 0x20:
		return r != '\t'
	case r < 0x7f:
		return false
	case r <= 0x9f: // DEL and the C1 controls (CSI is U+009B)
		return true
	}
	switch r {
	case 0x061c, // Arabic letter mark
		0x200e, 0x200f, // left-to-right and right-to-left marks
		0x2028, 0x2029, // line and paragraph separators
		0x202a, 0x202b, 0x202c, 0x202d, 0x202e, // embeddings and overrides
		0x2066, 0x2067, 0x2068, 0x2069: // isolates
		return true
	}
	return false
}

func escape(s string, keepNewlines bool) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' && keepNewlines {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if Escaped(r) || invalid(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n' && keepNewlines, !Escaped(r) && !invalid(r, size):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 || invalid(r, size):
			c := s[i]
			b.WriteString(`\x`)
			b.WriteByte(hexDigit[c>>4])
			b.WriteByte(hexDigit[c&0xf])
		default: // every escaped rune is below U+10000
			b.WriteString(`\u`)
			for shift := 12; shift >= 0; shift -= 4 {
				b.WriteByte(hexDigit[r>>shift&0xf])
			}
		}
		i += size
	}
	return b.String()
}

// invalid reports whether a rune decoded from size bytes stands for an
// invalid byte (a literal U+FFFD is three bytes long and printable).
func invalid(r rune, size int) bool { return r == utf8.RuneError && size == 1 }

const hexDigit = "0123456789abcdef"
