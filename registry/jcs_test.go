package registry

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The digest is defined by RFC 8785 (JCS). The snapshot's content is
// written in that form by its own direct writer; jsontext's
// Value.Canonicalize is the general implementation it is checked against.
// These tests hold that implementation to the RFC's own vectors, so that
// the check means something.

func canonicalize(t testing.TB, in string) string {
	t.Helper()
	v := jsontext.Value(in)
	if err := v.Canonicalize(); err != nil {
		t.Fatalf("Canonicalize(%s): %v", in, err)
	}
	return string(v)
}

// Number vectors from RFC 8785 appendix B, cross-checked against
// ECMAScript's String(Number) in Node.js.
func TestCanonicalizeRFC8785Numbers(t *testing.T) {
	tests := []struct {
		bits string
		want string
	}{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"},
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	}
	for _, tt := range tests {
		t.Run(tt.bits, func(t *testing.T) {
			u, err := strconv.ParseUint(tt.bits, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			// The shortest decimal that reads back as the same double.
			in := strconv.FormatFloat(math.Float64frombits(u), 'g', -1, 64)
			if got := canonicalize(t, "["+in+"]"); got != "["+tt.want+"]" {
				t.Errorf("got %s, want [%s]", got, tt.want)
			}
		})
	}
}

func TestCanonicalizeRFC8785(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			// RFC 8785 section 3.2.2.
			name: "rfc example",
			in: `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			// RFC 8785 section 3.2.3: UTF-16 code unit order, not byte order.
			name: "rfc sorting",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			name: "nested and empty",
			in:   `{"b": {"z": [], "a": {}}, "a": [1, "x", {"d": 1, "c": 2}]}`,
			want: `{"a":[1,"x",{"c":2,"d":1}],"b":{"a":{},"z":[]}}`,
		},
		{
			// Only '"', '\\' and C0 controls are escaped; U+2028 is not.
			name: "control characters",
			in:   `"\u0001\b\f\t\u001f\u2028<&>"`,
			want: "\"\\u0001\\b\\f\\t\\u001f\u2028<&>\"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canonicalize(t, tt.in); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	// Numbers beyond an IEEE 754 double are not among them: jsontext
	// rounds 1e400 to the largest double where RFC 8785 asks for an error.
	// A snapshot's only numbers are TTLs of 1 to 8760 hours.
	for _, in := range []string{`{"a": 1, "a": 2}`, `{} {}`, `{"a": }`, "\"\xff\"", `"\ud800"`} {
		v := jsontext.Value(in)
		if err := v.Canonicalize(); err == nil {
			t.Errorf("Canonicalize(%s): got %s and no error, want an error", in, v)
		}
	}
}

// FuzzContent checks the digest's direct writer against jsontext's
// canonicalization of the same document encoded by encoding/json, for any
// strings and TTLs: the digest is RFC 8785 whatever the content. The
// canonical file form, read back, must hold the same content.
func FuzzContent(f *testing.F) {
	f.Add("agt-a", "agt-a", "iam:agt-a", "ops-warden", "ops-warden/ssh-signing", 8, 24)
	f.Add("\u20ac\r1", "\U0001F600\u0080", "\ufb33\u00f6<&>\u2028\u0085\x7f", "\"\\/", "\x00\x1f", 0, -1)
	f.Fuzz(func(t *testing.T, name, principal, subject, source, pkg string, ttl, max int) {
		for _, s := range []string{name, principal, subject, source, pkg} {
			if !utf8.ValidString(s) {
				return // no snapshot holds such text: ParseUnverified refuses it
			}
		}
		s := &Snapshot{Schema: Schema, Source: source, PolicyPackage: pkg, Actors: []Actor{
			{Name: name, Type: principal, Principal: principal, DefaultTTLHours: ttl, MaxTTLHours: max, Subjects: []string{subject, name}},
			{Name: subject, Subjects: []string{}},
		}}
		got := s.AppendContent(nil)
		if want := generalJCS(t, s); !bytes.Equal(got, want) {
			t.Fatalf("direct writer:\ngot  %s\nwant %s", got, want)
		}

		// The file form, read back by another decoder and canonicalized
		// without its digest, is the same content.
		s.Digest = s.ComputeDigest()
		var members map[string]jsontext.Value
		if err := jsonv2.Unmarshal(s.Canonical(), &members); err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, s.Canonical())
		}
		delete(members, "digest")
		doc, err := json.Marshal(members)
		if err != nil {
			t.Fatal(err)
		}
		if again := canonicalize(t, string(doc)); again != string(got) {
			t.Fatalf("canonical file form holds other content:\ngot  %s\nwant %s", again, got)
		}
	})
}
