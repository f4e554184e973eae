package registry

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a strict JSON (RFC 8259) reader over a byte slice, made for
// the snapshot decoder: it reads values in place, without a token stream,
// so that a 100,000-actor snapshot loads in a fraction of the time
// encoding/json's Decoder.Token takes. A syntax error stops the scan; it is
// reported with its line and column.
type scanner struct {
	data []byte
	pos  int
}

// syntaxError is a fatal problem with the JSON text itself.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

func (sc *scanner) fail(format string, args ...any) error {
	return &syntaxError{off: sc.pos, msg: fmt.Sprintf(format, args...)}
}

// position returns the 1-based line and column of byte offset off.
func position(data []byte, off int) (line, col int) {
	off = min(off, len(data))
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func (sc *scanner) ws() {
	for sc.pos < len(sc.data) {
		switch sc.data[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of the input.
func (sc *scanner) peek() byte {
	sc.ws()
	if sc.pos >= len(sc.data) {
		return 0
	}
	return sc.data[sc.pos]
}

func (sc *scanner) expect(c byte) error {
	if got := sc.peek(); got != c {
		return sc.unexpected(fmt.Sprintf("%q", c))
	}
	sc.pos++
	return nil
}

func (sc *scanner) unexpected(want string) error {
	if sc.pos >= len(sc.data) {
		return sc.fail("unexpected end of JSON input, want %s", want)
	}
	return sc.fail("invalid character %q, want %s", sc.data[sc.pos], want)
}

// str reads a string. The result aliases the input when the string has no
// escapes; callers that keep it must copy it (string(b) does).
func (sc *scanner) str() ([]byte, error) {
	if err := sc.expect('"'); err != nil {
		return nil, err
	}
	start := sc.pos
	for i := start; i < len(sc.data); i++ {
		switch c := sc.data[i]; {
		case c == '"':
			sc.pos = i + 1
			b := sc.data[start:i]
			if !utf8.Valid(b) {
				return nil, sc.fail("invalid UTF-8 in string")
			}
			return b, nil
		case c == '\\':
			return sc.escapedStr(start)
		case c < 0x20:
			sc.pos = i
			return nil, sc.fail("control character %q in string", c)
		}
	}
	sc.pos = len(sc.data)
	return nil, sc.fail("unexpected end of JSON input in string")
}

// escapedStr finishes reading a string that has escapes, from start (just
// after the opening quote), into a new buffer.
func (sc *scanner) escapedStr(start int) ([]byte, error) {
	var out []byte
	i := start
	for i < len(sc.data) {
		c := sc.data[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			if !utf8.Valid(out) {
				return nil, sc.fail("invalid UTF-8 in string")
			}
			return out, nil
		case c < 0x20:
			sc.pos = i
			return nil, sc.fail("control character %q in string", c)
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(sc.data) {
			break
		}
		i += 2
		switch e := sc.data[i-1]; e {
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
			r, n := sc.hex4(i)
			if n < 0 {
				sc.pos = i
				return nil, sc.fail(`invalid \u escape`)
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, n2 := rune(-1), -1
				if i+1 < len(sc.data) && sc.data[i] == '\\' && sc.data[i+1] == 'u' {
					r2, n2 = sc.hex4(i + 2)
				}
				if r = utf16.DecodeRune(r, r2); n2 >= 0 && r != utf8.RuneError {
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			sc.pos = i - 1
			return nil, sc.fail("invalid escape %q in string", e)
		}
	}
	sc.pos = len(sc.data)
	return nil, sc.fail("unexpected end of JSON input in string")
}

// hex4 decodes the four hex digits at i; n is -1 when they are not.
func (sc *scanner) hex4(i int) (r rune, n int) {
	if i+4 > len(sc.data) {
		return 0, -1
	}
	v, err := strconv.ParseUint(string(sc.data[i:i+4]), 16, 32)
	if err != nil {
		return 0, -1
	}
	return rune(v), 4
}

// number reads a number literal, checking RFC 8259's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (sc *scanner) number() ([]byte, error) {
	sc.ws()
	d, start := sc.data, sc.pos
	i := start
	digits := func() bool {
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		sc.pos = i
		return nil, sc.unexpected("a digit")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			sc.pos = i
			return nil, sc.unexpected("a digit")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			sc.pos = i
			return nil, sc.unexpected("a digit")
		}
	}
	sc.pos = i
	return d[start:i], nil
}

func (sc *scanner) literal(word string) error {
	if !bytes.HasPrefix(sc.data[sc.pos:], []byte(word)) {
		return sc.unexpected("a value")
	}
	sc.pos += len(word)
	return nil
}

// skip reads and discards one value, and describes it for "want X, got Y"
// messages.
func (sc *scanner) skip() (string, error) {
	switch c := sc.peek(); c {
	case '{', '[':
		return sc.skipComposite()
	case '"':
		b, err := sc.str()
		return "string " + strconv.Quote(string(b)), err
	case 't':
		return "boolean true", sc.literal("true")
	case 'f':
		return "boolean false", sc.literal("false")
	case 'n':
		return "null", sc.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		b, err := sc.number()
		return "number " + string(b), err
	default:
		return "", sc.unexpected("a value")
	}
}

func (sc *scanner) skipComposite() (string, error) {
	open := sc.data[sc.pos]
	kind, end := "an object", byte('}')
	if open == '[' {
		kind, end = "an array", ']'
	}
	sc.pos++
	if sc.peek() == end {
		sc.pos++
		return kind, nil
	}
	for {
		if open == '{' {
			if _, err := sc.str(); err != nil {
				return "", err
			}
			if err := sc.expect(':'); err != nil {
				return "", err
			}
		}
		if _, err := sc.skip(); err != nil {
			return "", err
		}
		switch sc.peek() {
		case ',':
			sc.pos++
		case end:
			sc.pos++
			return kind, nil
		default:
			return "", sc.unexpected(fmt.Sprintf("',' or %q", end))
		}
	}
}

// elements calls elem for each element of the array or member of the
// object that starts at the current position (the caller has checked the
// opening byte). For objects, key is the member name.
func (sc *scanner) elements(elem func(key []byte) error) error {
	open := sc.data[sc.pos]
	end := byte('}')
	if open == '[' {
		end = ']'
	}
	sc.pos++
	if sc.peek() == end {
		sc.pos++
		return nil
	}
	for {
		var key []byte
		if open == '{' {
			var err error
			if key, err = sc.str(); err != nil {
				return err
			}
			if err := sc.expect(':'); err != nil {
				return err
			}
		}
		if err := elem(key); err != nil {
			return err
		}
		switch sc.peek() {
		case ',':
			sc.pos++
		case end:
			sc.pos++
			return nil
		default:
			return sc.unexpected(fmt.Sprintf("',' or %q", end))
		}
	}
}
