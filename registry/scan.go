package registry

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/coulomb/flex-auth/internal/jsontext"
)

// scanner is a strict JSON (RFC 8259) reader over a byte slice, made for
// the snapshot decoder: it reads values in place, without a token stream,
// so that a 100,000-actor snapshot loads in a fraction of the time
// encoding/json's Decoder.Token takes. Strings and numbers are read by
// jsontext. A syntax error, a *jsontext.Error, stops the scan; Decode
// reports it with its line and column.
type scanner struct {
	data []byte
	pos  int
	buf  []byte // strings with escapes are decoded here; see str
}

func (sc *scanner) fail(format string, args ...any) error {
	return &jsontext.Error{Offset: sc.pos, Msg: fmt.Sprintf(format, args...)}
}

// position returns the 1-based line and column of byte offset off.
func position(data []byte, off int) (line, col int) {
	off = min(off, len(data))
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func (sc *scanner) ws() { sc.pos = jsontext.SkipSpace(sc.data, sc.pos) }

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

// str reads a string. The result aliases the input, or sc.buf when the
// string has escapes, until the next call; callers that keep it must copy
// it (string(b) does).
func (sc *scanner) str() ([]byte, error) {
	if sc.peek() != '"' {
		return nil, sc.unexpected(`'"'`)
	}
	b, end, err := jsontext.ReadString(sc.data, sc.pos, sc.buf[:0])
	if err != nil {
		return nil, err
	}
	if len(b) < end-sc.pos-2 { // decoded into sc.buf: keep it if it grew
		sc.buf = b[:0]
	}
	sc.pos = end
	return b, nil
}

// number reads a number literal; integral reports whether it is written
// as an integer.
func (sc *scanner) number() (lit []byte, integral bool, err error) {
	sc.ws()
	start := sc.pos
	end, integral, err := jsontext.ReadNumber(sc.data, start)
	if err != nil {
		return nil, false, err
	}
	sc.pos = end
	return sc.data[start:end], integral, nil
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
		b, _, err := sc.number()
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
