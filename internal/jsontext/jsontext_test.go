package jsontext

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"
)

func TestSkipSpace(t *testing.T) {
	tests := []struct {
		in   string
		i    int
		want int
	}{
		{"", 0, 0},
		{"x", 0, 0},
		{" \t\r\n x", 0, 5},
		{"   ", 0, 3},
		{"a  b", 1, 3},
		{"\v", 0, 0}, // not JSON whitespace
		{"\u00a0", 0, 0},
	}
	for _, tt := range tests {
		if got := SkipSpace([]byte(tt.in), tt.i); got != tt.want {
			t.Errorf("SkipSpace(%q, %d): got %d, want %d", tt.in, tt.i, got, tt.want)
		}
	}
}

func TestReadString(t *testing.T) {
	tests := []struct {
		name, in, want string
		end            int
	}{
		{"empty", `""`, "", 2},
		{"plain", `"abc" , 1`, "abc", 5},
		{"UTF-8", `"café ✓ 😀"`, "café ✓ 😀", len(`"café ✓ 😀"`)},
		{"simple escapes", `"a\"b\\c\/d\be\ff\ng\rh\ti"`, "a\"b\\c/d\be\ff\ng\rh\ti", 27},
		{"escape first", `"\nx"`, "\nx", 5},
		{"escape last", `"x\n"`, "x\n", 5},
		{"unicode escapes", `"\u0041\u00e9\u20AC"`, "Aé€", 20},
		{"surrogate pair", `"\ud83d\ude00!"`, "😀!", 15},
		{"replacement character escaped", `"\ufffd"`, "\ufffd", 8},
		{"UTF-8 around escapes", `"é\té"`, "é\té", len(`"é\té"`)},
		{"DEL is not a control character", "\"\x7f\"", "\x7f", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.in)
			s, end, err := ReadString(data, 0, nil)
			if err != nil {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if string(s) != tt.want || end != tt.end {
				t.Errorf("got %q, end %d, want %q, end %d", s, end, tt.want, tt.end)
			}
			escaped := strings.Contains(tt.in[:tt.end], `\`)
			if got := len(s) < end-2; got != escaped {
				t.Errorf("len(s) < end-i-2 is %v, want %v (has escapes)", got, escaped)
			}
			if !escaped && len(s) > 0 && unsafe.SliceData(s) != &data[1] {
				t.Errorf("result does not alias the input")
			}
		})
	}
}

func TestReadStringAtOffset(t *testing.T) {
	data := []byte(`{"k": "v\u0041"}`)
	s, end, err := ReadString(data, 6, nil)
	if err != nil || string(s) != "vA" || end != 15 {
		t.Errorf(`got %q, %d, %v, want "vA", 15, nil`, s, end, err)
	}
}

// TestReadStringBuffer checks that a string with escapes is decoded into
// the caller's buffer when it has room, so that callers can avoid
// allocating.
func TestReadStringBuffer(t *testing.T) {
	var scratch [64]byte
	buf := append(scratch[:0], "kept"...)
	s, _, err := ReadString([]byte(`"a\nb"`), 0, buf[len(buf):])
	if err != nil {
		t.Fatal(err)
	}
	if string(s) != "a\nb" || unsafe.SliceData(s) != &scratch[4] {
		t.Errorf("got %q at %p, want \"a\\nb\" in the buffer at %p", s, unsafe.SliceData(s), &scratch[4])
	}
	if string(scratch[:4]) != "kept" {
		t.Errorf("buffer before the append: got %q, want kept", scratch[:4])
	}
	long := `"\t` + strings.Repeat("x", 100) + `"`
	s, _, err = ReadString([]byte(long), 0, scratch[:0])
	if err != nil || string(s) != "\t"+strings.Repeat("x", 100) {
		t.Errorf("string longer than the buffer: got %q, %v", s, err)
	}
}

func TestReadStringErrors(t *testing.T) {
	tests := []struct {
		name, in string
		offset   int
		msg      string
		strict   bool
	}{
		{"not a string", `abc`, 0, "want a string, got 'a'", false},
		{"nothing", ``, 0, "want a string, got the end of input", false},
		{"unterminated", `"abc`, 4, "unexpected end of input in a string", false},
		{"unterminated after escape", `"a\n`, 4, "unexpected end of input in a string", false},
		{"backslash at the end", `"a\`, 3, "unexpected end of input in a string", false},
		{"raw line feed", "\"a\nb\"", 2, "control character U+000A in a string; escape it", false},
		{"raw NUL after escape", "\"\\t\x00\"", 3, "control character U+0000 in a string; escape it", false},
		{"bad escape", `"a\x"`, 3, "invalid escape character 'x' in a string", false},
		{"escaped non-ASCII", "\"\\\xc3\xa9\"", 2, "invalid escape character byte 0xC3 in a string", false},
		{"short hex", `"\u12"`, 3, `want four hex digits after \u`, false},
		{"bad hex", `"\u12g4"`, 3, `want four hex digits after \u`, false},
		{"bad hex after a high surrogate", `"\ud800\u12g4"`, 9, `want four hex digits after \u`, false},
		{"invalid UTF-8", "\"ab\xffc\"", 3, "invalid UTF-8 in a string", true},
		{"truncated UTF-8", "\"\xc3\"", 1, "invalid UTF-8 in a string", true},
		{"UTF-8 surrogate", "\"\xed\xa0\x80\"", 1, "invalid UTF-8 in a string", true},
		{"overlong UTF-8", "\"\xc0\xaf\"", 1, "invalid UTF-8 in a string", true},
		{"invalid UTF-8 after an escape", "\"\\n\xff\"", 3, "invalid UTF-8 in a string", true},
		{"invalid UTF-8 before an escape", "\"\xff\\n\"", 1, "invalid UTF-8 in a string", true},
		{"lone high surrogate", `"\ud800"`, 1, `unpaired UTF-16 surrogate in a \u escape`, true},
		{"lone high surrogate at the end", `"x\uDBFF`, 2, `unpaired UTF-16 surrogate in a \u escape`, true},
		{"lone low surrogate", `"\udc00\udc00"`, 1, `unpaired UTF-16 surrogate in a \u escape`, true},
		{"high surrogate then a letter", `"\ud800\u0041"`, 1, `unpaired UTF-16 surrogate in a \u escape`, true},
		{"high surrogate then another", `"a\ud800\ud800"`, 2, `unpaired UTF-16 surrogate in a \u escape`, true},
		{"high surrogate then text", `"\ud83dx"`, 1, `unpaired UTF-16 surrogate in a \u escape`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, err := ReadString([]byte(tt.in), 0, nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %q, %v, want an *Error", s, err)
			}
			if e.Offset != tt.offset || e.Msg != tt.msg || e.Strict != tt.strict || e.Error() != tt.msg {
				t.Errorf("got offset %d %q strict %v, want offset %d %q strict %v", e.Offset, e.Msg, e.Strict, tt.offset, tt.msg, tt.strict)
			}
		})
	}
}

func TestReadNumber(t *testing.T) {
	tests := []struct {
		in       string
		end      int
		integral bool
	}{
		{"0", 1, true},
		{"-0", 2, true},
		{"7", 1, true},
		{"1234567890", 10, true},
		{"-42,", 3, true},
		{"01", 1, true}, // the caller sees the 1
		{"1.5", 3, false},
		{"-0.0", 4, false},
		{"2.4e1", 5, false},
		{"24E0", 4, false},
		{"1e+9}", 4, false},
		{"1e-400", 6, false},
		{"12.50e-07 ", 9, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			end, integral, err := ReadNumber([]byte(tt.in), 0)
			if err != nil || end != tt.end || integral != tt.integral {
				t.Errorf("got %d, %v, %v, want %d, %v, nil", end, integral, err, tt.end, tt.integral)
			}
		})
	}
}

func TestReadNumberErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "want a digit in a number, got the end of input"},
		{"-", 1, "want a digit in a number, got the end of input"},
		{"+1", 0, "want a digit in a number, got '+'"},
		{"-x", 1, "want a digit in a number, got 'x'"},
		{".5", 0, "want a digit in a number, got '.'"},
		{"1.", 2, "want a digit after the decimal point, got the end of input"},
		{"1.e5", 2, "want a digit after the decimal point, got 'e'"},
		{"1e", 2, "want a digit in the exponent, got the end of input"},
		{"1e+", 3, "want a digit in the exponent, got the end of input"},
		{"1E-}", 3, "want a digit in the exponent, got '}'"},
		{"1e\n", 2, "want a digit in the exponent, got U+000A"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, _, err := ReadNumber([]byte(tt.in), 0)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if e.Offset != tt.offset || e.Msg != tt.msg || e.Strict {
				t.Errorf("got offset %d %q strict %v, want offset %d %q", e.Offset, e.Msg, e.Strict, tt.offset, tt.msg)
			}
		})
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		lit  string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"24", 24, true},
		{"-24", -24, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"18446744073709551615", 0, false},
		{"99999999999999999999", 0, false},
		{"9999999999999999999", 0, false},
		{"-9999999999999999999", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"+1", 0, false},
		{"1-", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.lit, func(t *testing.T) {
			got, ok := ParseInt([]byte(tt.lit))
			if ok != tt.ok || ok && got != tt.want {
				t.Errorf("got %d, %v, want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func BenchmarkReadString(b *testing.B) {
	for _, bb := range []struct{ name, in string }{
		{"ASCII", `"iam:agt-state-hub-bridge"`},
		{"UTF-8", `"équipe-état-hub-bridge"`},
		{"escapes", `"agt-state\n\u0068ub-bridge"`},
	} {
		b.Run(bb.name, func(b *testing.B) {
			data := []byte(bb.in)
			var scratch [64]byte
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ReadString(data, 0, scratch[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
