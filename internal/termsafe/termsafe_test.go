package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	tests := []struct{ in, line, text string }{
		{"plain text, tabs\tand ünïcode ✓", "plain text, tabs\tand ünïcode ✓", "plain text, tabs\tand ünïcode ✓"},
		{"clear \x1b[2J screen", `clear \x1b[2J screen`, `clear \x1b[2J screen`},
		{"bell\a", `bell\x07`, `bell\x07`},
		{"over\rwrite", `over\rwrite`, `over\rwrite`},
		{"two\nlines\n", `two\nlines\n`, "two\nlines\n"},
		{"nul\x00 del\x7f", `nul\x00 del\x7f`, `nul\x00 del\x7f`},
		{"c1 csi \u009b31m nel \u0085", `c1 csi \u009b31m nel \u0085`, `c1 csi \u009b31m nel \u0085`},
		{"bidi \u202eevil\u202c \u2066iso\u2069 \u200f", `bidi \u202eevil\u202c \u2066iso\u2069 \u200f`, `bidi \u202eevil\u202c \u2066iso\u2069 \u200f`},
		{"sep \u2028 \u2029", `sep \u2028 \u2029`, `sep \u2028 \u2029`},
		{"bad \xff\xc3 utf8", `bad \xff\xc3 utf8`, `bad \xff\xc3 utf8`},
		{"literal \ufffd stays", "literal \ufffd stays", "literal \ufffd stays"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := Line(tt.in); got != tt.line {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.line)
		}
		if got := Text(tt.in); got != tt.text {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.text)
		}
	}
}

// FuzzLine: whatever the input, the result holds no character a terminal
// acts on but tabs (and, from Text, newlines), and is valid UTF-8; and
// text that needs no escape is returned as it is.
func FuzzLine(f *testing.F) {
	f.Add("plain")
	f.Add("\x1b[2J\a\r\n\u009b\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []bool{false, true} {
			got := escape(s, keep)
			if !utf8.ValidString(got) {
				t.Fatalf("escape(%q) = %q: not UTF-8", s, got)
			}
			for _, r := range got {
				if Escaped(r) && !(r == '\n' && keep) {
					t.Fatalf("escape(%q, %v) = %q: holds %U", s, keep, got, r)
				}
			}
			clean := utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return Escaped(r) && !(r == '\n' && keep) }) < 0
			if clean && got != s {
				t.Fatalf("escape(%q) = %q: changed text that needs no escape", s, got)
			}
		}
	})
}
