package jsontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRead holds jsontext to encoding/json on arbitrary text. After
// leading whitespace, a string or a number is read:
//   - what jsontext accepts, encoding/json decodes to the same value, and
//     it holds U+FFFD only where the text does;
//   - a text that encoding/json accepts as one string or number, jsontext
//     reads whole, except strings encoding/json repairs (invalid UTF-8,
//     unpaired surrogates), which jsontext refuses as Strict;
//   - an error that is not Strict is for text that is not JSON.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		`"abc"`, ` "a\"b\\c\/d\be\ff\ng\rh\ti"`, `"\u0041\u00e9\ud83d\ude00"`, `"\ud800"`, `"\udc00\ud800"`,
		"\"\xff\"", "\"a\nb\"", `"\x"`, `"\u12"`, `"abc`, `"é\té"`,
		`0`, `-0`, `12.5e-3`, `1E+2 `, `01`, `-`, `1.`, `1e`, `9223372036854775807`, `-9223372036854775809`, `1e400`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i := SkipSpace(data, 0)
		if i == len(data) {
			return
		}
		valid := json.Valid(data) // one value, surrounded by whitespace at most
		rest := func(end int) bool { return SkipSpace(data, end) == len(data) }
		switch c := data[i]; {
		case c == '"':
			s, end, err := ReadString(data, i, nil)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Offset < i || e.Offset > len(data) {
					t.Fatalf("error %v for %q: want an *Error with an offset in the text", err, data)
				}
				if !valid {
					return
				}
				var want string
				if !e.Strict || json.Unmarshal(data, &want) != nil || !strings.ContainsRune(want, utf8.RuneError) {
					t.Fatalf("refused valid JSON %q (%v, strict %v)", data, err, e.Strict)
				}
				return
			}
			var want string
			if err := json.Unmarshal(data[i:end], &want); err != nil {
				t.Fatalf("accepted %q, encoding/json: %v", data[i:end], err)
			}
			if string(s) != want {
				t.Fatalf("read %q as %q, encoding/json as %q", data[i:end], s, want)
			}
			if !utf8.Valid(s) {
				t.Fatalf("read %q as invalid UTF-8 %q", data[i:end], s)
			}
			// Nothing is repaired: U+FFFD comes only from the text itself.
			lit := bytes.ToLower(data[i:end])
			if bytes.ContainsRune(s, utf8.RuneError) && !bytes.Contains(lit, []byte("\ufffd")) && !bytes.ContainsRune(lit, utf8.RuneError) {
				t.Fatalf("read %q as %q: a replacement character the text does not have", data[i:end], s)
			}
			if escaped := bytes.IndexByte(data[i:end], '\\') >= 0; escaped != (len(s) < end-i-2) {
				t.Fatalf("%q: len(s) < end-i-2 is %v, want %v", data[i:end], !escaped, escaped)
			}
			if valid != rest(end) {
				t.Fatalf("%q: json.Valid %v, but the string ends at %d", data, valid, end)
			}
		case c == '-' || '0' <= c && c <= '9':
			end, integral, err := ReadNumber(data, i)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Strict || e.Offset < i || e.Offset > len(data) {
					t.Fatalf("error %v for %q: want a syntax *Error with an offset in the text", err, data)
				}
				if valid {
					t.Fatalf("refused valid JSON %q: %v", data, err)
				}
				return
			}
			lit := data[i:end]
			if !json.Valid(lit) {
				t.Fatalf("accepted %q, which is not JSON", lit)
			}
			if valid != rest(end) {
				t.Fatalf("%q: json.Valid %v, but the number ends at %d", data, valid, end)
			}
			if integral == bytes.ContainsAny(lit, ".eE") {
				t.Fatalf("%q: integral %v", lit, integral)
			}
			var f64 float64
			ferr := json.Unmarshal(lit, &f64)
			if want, err := strconv.ParseFloat(string(lit), 64); ferr == nil && want != f64 || ferr != nil && err == nil {
				t.Fatalf("%q: encoding/json reads %v (%v), strconv %v (%v)", lit, f64, ferr, want, err)
			}
			if !integral {
				return
			}
			n, ok := ParseInt(lit)
			var want int64
			werr := json.Unmarshal(lit, &want)
			if ok != (werr == nil) || ok && n != want {
				t.Fatalf("ParseInt(%q): got %d, %v, encoding/json %d, %v", lit, n, ok, want, werr)
			}
		}
	})
}
