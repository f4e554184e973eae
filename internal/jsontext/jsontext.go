// Package jsontext reads the lexical pieces of strict RFC 8259 JSON in
// place: whitespace, strings and numbers. It is what the snapshot loader
// (registry) and the /v1/check body decoder (serve) share; each walks
// objects and arrays its own way, with its own error paths and limits.
//
// Strict means one reading for every text: a string must be valid UTF-8
// and its \u escapes must not leave a UTF-16 surrogate unpaired, where
// other parsers would each repair such text their own way.
package jsontext

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// An Error is a problem with the JSON text at byte Offset. Error returns
// the message alone, as encoding/json's SyntaxError does: callers say where
// in the terms their users read, lines and columns or bytes.
type Error struct {
	Offset int
	Msg    string
	// Strict marks text that RFC 8259's grammar allows but that this
	// package refuses: invalid UTF-8 and unpaired surrogate escapes.
	// encoding/json.Valid accepts such text.
	Strict bool
}

func (e *Error) Error() string { return e.Msg }

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (space, tab, line feed, carriage return), or len(data).
func SkipSpace(data []byte, i int) int {
	for ; i < len(data); i++ {
		if c := data[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return i
}

// ReadString reads the string literal whose opening quote is at data[i].
// It returns the decoded bytes and the index just after the closing quote.
//
// When the literal has no escapes, s aliases data[i+1:end-1]. Otherwise
// the decoded bytes are appended to buf, which may grow, and s is the
// result: callers that pass a reused or stack buffer avoid an allocation.
// An escape always decodes shorter than it is written, so s has escapes
// exactly when len(s) < end-i-2. Either way, callers that keep s copy it.
//
// Control characters, unknown escapes, invalid UTF-8 and unpaired
// surrogates are errors (*Error); on error, end is the error's offset.
func ReadString(data []byte, i int, buf []byte) (s []byte, end int, err error) {
	if i >= len(data) || data[i] != '"' {
		return nil, i, errorAt(data, i, "want a string, got ")
	}
	start := i + 1
	var all byte // every byte ORed together: is any of them not ASCII?
	for j := start; j < len(data); j++ {
		c := data[j]
		switch {
		case c == '"':
			if all >= utf8.RuneSelf {
				if err := checkUTF8(data, start, j); err != nil {
					return nil, err.Offset, err
				}
			}
			return data[start:j], j + 1, nil
		case c == '\\':
			return readEscaped(data, start, j, buf)
		case c < 0x20:
			return nil, j, controlError(j, c)
		}
		all |= c
	}
	return nil, len(data), &Error{Offset: len(data), Msg: "unexpected end of input in a string"}
}

// readEscaped finishes reading a string whose content starts at start and
// whose first escape is at j.
func readEscaped(data []byte, start, j int, buf []byte) ([]byte, int, error) {
	out := buf
	run := start // the first byte not yet copied to out
	for j < len(data) {
		c := data[j]
		if c != '"' && c != '\\' {
			if c < 0x20 {
				return nil, j, controlError(j, c)
			}
			j++
			continue
		}
		if err := checkUTF8(data, run, j); err != nil {
			return nil, err.Offset, err
		}
		out = append(out, data[run:j]...)
		if c == '"' {
			return out, j + 1, nil
		}
		if j+1 == len(data) {
			break
		}
		switch e := data[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(data, j+2)
			if !ok {
				return nil, j + 2, hexError(j + 2)
			}
			n := 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if k := j + 6; k+1 < len(data) && data[k] == '\\' && data[k+1] == 'u' {
					if r2, ok = hex4(data, k+2); !ok {
						return nil, k + 2, hexError(k + 2)
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return nil, j, &Error{Offset: j, Msg: `unpaired UTF-16 surrogate in a \u escape`, Strict: true}
				}
				n = 12
			}
			out = utf8.AppendRune(out, r)
			j += n
			run = j
			continue
		default:
			return nil, j + 1, &Error{Offset: j + 1, Msg: "invalid escape character " + describe(e) + " in a string"}
		}
		j += 2
		run = j
	}
	return nil, len(data), &Error{Offset: len(data), Msg: "unexpected end of input in a string"}
}

// hex4 decodes the four hex digits of a \u escape at i.
func hex4(data []byte, i int) (rune, bool) {
	if len(data)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func hexError(i int) *Error {
	return &Error{Offset: i, Msg: `want four hex digits after \u`}
}

// checkUTF8 reports the first invalid UTF-8 sequence in data[from:to].
func checkUTF8(data []byte, from, to int) *Error {
	if utf8.Valid(data[from:to]) {
		return nil
	}
	for i := from; i < to; {
		r, size := utf8.DecodeRune(data[i:to])
		if r == utf8.RuneError && size == 1 {
			return &Error{Offset: i, Msg: "invalid UTF-8 in a string", Strict: true}
		}
		i += size
	}
	panic("unreachable: utf8.Valid and utf8.DecodeRune disagree")
}

func controlError(i int, c byte) *Error {
	return &Error{Offset: i, Msg: "control character " + describe(c) + " in a string; escape it"}
}

// ReadNumber reads the number literal that starts at data[i], checking
// RFC 8259's grammar, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and
// returns the index just after it. integral reports whether it is written
// as an integer: no fraction, no exponent. What follows the literal is the
// caller's to check: "01" reads as 0 followed by 1.
func ReadNumber(data []byte, i int) (end int, integral bool, err error) {
	j := i
	if j < len(data) && data[j] == '-' {
		j++
	}
	switch {
	case j < len(data) && data[j] == '0':
		j++
	case j < len(data) && '1' <= data[j] && data[j] <= '9':
		j = digits(data, j+1)
	default:
		return j, false, errorAt(data, j, "want a digit in a number, got ")
	}
	integral = true
	if j < len(data) && data[j] == '.' {
		integral = false
		if j++; j == len(data) || data[j] < '0' || data[j] > '9' {
			return j, false, errorAt(data, j, "want a digit after the decimal point, got ")
		}
		j = digits(data, j)
	}
	if j < len(data) && (data[j] == 'e' || data[j] == 'E') {
		integral = false
		if j++; j < len(data) && (data[j] == '+' || data[j] == '-') {
			j++
		}
		if j == len(data) || data[j] < '0' || data[j] > '9' {
			return j, false, errorAt(data, j, "want a digit in the exponent, got ")
		}
		j = digits(data, j)
	}
	return j, integral, nil
}

// digits returns the index of the first byte at or after i that is not a
// decimal digit.
func digits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}

// ParseInt parses an integer literal, one that ReadNumber reports
// integral, without allocating. ok is false when the value does not fit in
// an int64, or when lit is not an integer literal; n is then meaningless.
func ParseInt(lit []byte) (n int64, ok bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if uint(len(lit)-1) > 18 { // 1 to 19 digits: no overflow below
		return 0, false
	}
	var u uint64
	for _, c := range lit {
		if c-'0' > 9 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		return -int64(u), u <= 1<<63
	}
	return int64(u), u < 1<<63
}

// errorAt returns an Error at i whose message is msg followed by what is
// at i.
func errorAt(data []byte, i int, msg string) *Error {
	if i >= len(data) {
		return &Error{Offset: i, Msg: msg + "the end of input"}
	}
	return &Error{Offset: i, Msg: msg + describe(data[i])}
}

// describe names a byte for a message: quoted when it is printable ASCII,
// by code otherwise, so that a message never carries a raw control byte
// or a piece of a UTF-8 sequence.
func describe(c byte) string {
	if c < utf8.RuneSelf {
		if c >= 0x20 && c < 0x7f {
			return strconv.QuoteRune(rune(c))
		}
		return fmt.Sprintf("U+%04X", c)
	}
	return fmt.Sprintf("byte 0x%02X", c)
}
