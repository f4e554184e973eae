package serve

import (
	"io"
	"strings"
	"testing"
	"unsafe"
)

func TestDecodeNumbers(t *testing.T) {
	tests := []struct {
		lit  string
		want any
	}{
		{"24", int64(24)},
		{"-0", int64(0)},
		{"0", int64(0)},
		{"-9223372036854775808", int64(-9223372036854775808)},
		{"9223372036854775807", int64(9223372036854775807)},
		{"9223372036854775808", float64(9223372036854775808)},
		{"-9223372036854775809", float64(-9223372036854775809)},
		{"24.0", float64(24)},
		{"2.4e1", float64(24)},
		{"24E0", float64(24)},
		{"1.5", 1.5},
		{"-1e-400", float64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.lit, func(t *testing.T) {
			var req checkRequest
			if err := decodeRequest([]byte(`{"subject":"a","resource":"b","context":{"n":`+tt.lit+`}}`), &req, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := req.Context["n"]; got != tt.want {
				t.Errorf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestIntern(t *testing.T) {
	snap := altRegistry(t, "ops-warden/ssh-signing")
	a := &snap.Actors[0]
	tests := []struct {
		in   string
		want *string // the string it must share, nil when not interned
	}{
		{bridge, &a.Name},
		{"iam:" + bridge, &a.Subjects[1]},
		{"iam:agt-nobody", nil},
		{"agt-nobody", nil},
		{"iam:", nil},
		{"", nil},
		{"agt-task-bridge", nil}, // principals are not searched
		{"subject", nil},         // a constant, checked below
	}
	for _, tt := range tests {
		got, ok := intern(snap, []byte(tt.in))
		switch {
		case tt.in == "subject":
			if !ok || got != "subject" {
				t.Errorf("intern(subject): got %q %v, want the member name", got, ok)
			}
		case tt.want == nil && ok:
			t.Errorf("intern(%q): got %q, want not interned", tt.in, got)
		case tt.want != nil && (!ok || got != *tt.want || unsafe.StringData(got) != unsafe.StringData(*tt.want)):
			t.Errorf("intern(%q): got %q %v, want the snapshot's own string", tt.in, got, ok)
		}
	}
	if _, ok := intern(nil, []byte(bridge)); ok {
		t.Errorf("intern with no snapshot: got interned, want not")
	}
}

// TestDecodeAllocs checks that escapes cost nothing extra: a body spelled
// with escapes decodes with the allocations of the same body spelled
// plainly (strings the snapshot holds are shared either way).
func TestDecodeAllocs(t *testing.T) {
	snap := newTestServer(t, Source{}, io.Discard).checkState().snap
	escaped := strings.NewReplacer(`"iam:agt`, `"iam:\u0061gt`, `"agt-task`, `"agt\u002dtask`, `"ssh.sign"`, `"ss\u0068.sign"`).Replace(allowBody)
	if escaped == allowBody {
		t.Fatal("the replacements do not apply to allowBody")
	}
	allocs := func(body string) float64 {
		data := []byte(body)
		var req checkRequest
		ctx := map[string]any{}
		return testing.AllocsPerRun(100, func() {
			clear(ctx)
			if err := decodeRequest(data, &req, snap, ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	if plain, esc := allocs(allowBody), allocs(escaped); esc != plain {
		t.Errorf("got %v allocations with escapes, want %v as without", esc, plain)
	}
}

// TestDecodeLexicalErrors pins the messages for errors inside strings and
// numbers: the byte they are at, whether they are JSON syntax errors or
// JSON this decoder refuses, and what jsontext says about them.
func TestDecodeLexicalErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
		syntax           bool
	}{
		{"bad escape", `{"subject":"a\x","resource":"b"}`, "invalid JSON at byte 13: invalid escape sequence `\\x` in string", true},
		{"short hex escape", `{"subject":"\u12x4","resource":"b"}`, "invalid JSON at byte 12: invalid escape sequence `\\u12x4` in string", true},
		{"raw control character", "{\"subject\":\"a\nb\",\"resource\":\"b\"}", `invalid JSON at byte 13: invalid character '\n' in string (expecting non-control character)`, true},
		{"unterminated string", `{"subject":"abc`, `invalid JSON at byte 15: unexpected EOF`, true},
		{"unterminated key", `{"subj`, `invalid JSON at byte 6: unexpected EOF`, true},
		{"lone surrogate", `{"subject":"\ud800","resource":"b"}`, "invalid request at byte 12: invalid surrogate pair `\\ud800\",\"res` in string", false},
		{"lone surrogate in a key", `{"subject":"a","resource":"b","context":{"\udfff":1}}`, "invalid request at byte 42: invalid surrogate pair `\\udfff\":1}}` in string", false},
		{"invalid UTF-8", "{\"subject\":\"a\xff\",\"resource\":\"b\"}", `invalid request at byte 13: invalid UTF-8`, false},
		{"invalid UTF-8 after an escape", "{\"subject\":\"\\n\xc3\",\"resource\":\"b\"}", `invalid request at byte 14: invalid UTF-8`, false},
		{"no digit after the point", `{"subject":"a","resource":"b","context":{"n":1.}}`, `invalid JSON at byte 47: invalid character '}' in number (expecting digit)`, true},
		{"no digit in the exponent", `{"subject":"a","resource":"b","context":{"n":1e+}}`, `invalid JSON at byte 48: invalid character '}' in number (expecting digit)`, true},
		{"minus alone", `{"subject":"a","resource":"b","context":{"n":-}}`, `invalid JSON at byte 46: invalid character '}' in number (expecting digit)`, true},
		{"trailing data", `{"subject":"a","resource":"b"} x`, `invalid JSON at byte 31: trailing data after the request object`, true},
		{"trailing comma", `{"subject":"a","resource":"b",}`, `invalid JSON at byte 29: invalid character ',' at start of value`, true},
		{"empty", " \r\n\t", `request body is empty; want a JSON object`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req checkRequest
			err := decodeRequest([]byte(tt.body), &req, nil, nil)
			re, ok := err.(*requestError)
			if !ok {
				t.Fatalf("got %v, want a *requestError %q", err, tt.want)
			}
			if re.msg != tt.want || re.syntax != tt.syntax {
				t.Errorf("got %q (syntax %v), want %q (syntax %v)", re.msg, re.syntax, tt.want, tt.syntax)
			}
		})
	}
}
