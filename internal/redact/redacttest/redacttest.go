// Package redacttest helps fuzz tests check that the redacted form of a
// parser's errors depends on where and which rules a file breaks, not on
// the values it holds.
package redacttest

import (
	"bytes"
	"regexp"
)

// SwapQZ returns src with the letters q and z swapped, but in the words
// keep (each given with its swapped twin, as "seq", "sez", so that a file
// holding the twin swaps back to the same). Parsers whose keys, keywords
// and schemas hold no q or z (or only in keep) see in the swapped file
// the same rules broken at the same places, with other values: the
// redacted forms of their errors must be the same.
func SwapQZ(src []byte, keep ...string) []byte {
	out := bytes.Clone(src)
	kept := make([]bool, len(src))
	for _, w := range keep {
		for i := 0; ; {
			j := bytes.Index(src[i:], []byte(w))
			if j < 0 {
				break
			}
			for k := i + j; k < i+j+len(w); k++ {
				kept[k] = true
			}
			i += j + 1
		}
	}
	for i, c := range out {
		switch {
		case kept[i]:
		case c == 'q':
			out[i] = 'z'
		case c == 'z':
			out[i] = 'q'
		}
	}
	return out
}

// hint is a "did you mean" hint, which names a key of flex-auth's own and
// may differ between a file and its swapped twin: a misspelt key may be
// nearer to a key with a q than with a z.
var hint = regexp.MustCompile(` \(did you mean "[a-z_]+"\?\)`)

// WithoutHints returns msg without its "did you mean" hints.
func WithoutHints(msg string) string { return hint.ReplaceAllString(msg, "") }
