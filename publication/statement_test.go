package publication

import (
	"strings"
	"testing"
)

var (
	d1 = "sha256:" + strings.Repeat("a", 64)
	d2 = "sha256:" + strings.Repeat("b", 64)
	d3 = "sha256:" + strings.Repeat("c", 64)
)

const goodStatement = "flex-auth publication v1\npackage: ops-warden/ssh-signing\nserial: 1764489600\n"

func statementText(rest string) string { return goodStatement + rest }

func TestStatementRoundTrip(t *testing.T) {
	st := &Statement{Package: "ops-warden/ssh-signing", Serial: 1764489600, RegistryDigest: d1, RegistryFile: d2, PolicyDigest: d3}
	text := st.Marshal()
	if want := statementText("registry: " + d1 + "\nregistry-file: " + d2 + "\npolicy: " + d3 + "\n"); string(text) != want {
		t.Fatalf("Marshal:\n%s\nwant:\n%s", text, want)
	}
	got, err := ParseStatement(text)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *st {
		t.Errorf("ParseStatement(Marshal()) = %+v, want %+v", got, st)
	}
}

// TestParseStatementRefuses checks that one signed statement has one
// reading: anything but what Marshal writes is refused.
func TestParseStatementRefuses(t *testing.T) {
	tail := "registry: " + d1 + "\nregistry-file: " + d2 + "\npolicy: " + d3 + "\n"
	tests := []struct{ name, text, want string }{
		{"no final newline", strings.TrimSuffix(statementText(tail), "\n"), "does not end with a newline"},
		{"another version", strings.Replace(statementText(tail), "v1", "v2", 1), "want \"flex-auth publication v1\""},
		{"lines swapped", goodStatement + "registry-file: " + d2 + "\nregistry: " + d1 + "\npolicy: " + d3 + "\n", `line 4: want "registry: ..."`},
		{"a line more", statementText(tail + "comment: hi\n"), "one each, in that order"},
		{"a line less", statementText("registry: " + d1 + "\npolicy: " + d3 + "\n"), "one each, in that order"},
		{"CRLF", strings.ReplaceAll(statementText(tail), "\n", "\r\n"), "want"},
		{"serial 0", strings.Replace(statementText(tail), "1764489600", "0", 1), `serial "0" is not a whole number`},
		{"serial with a sign", strings.Replace(statementText(tail), "1764489600", "+1764489600", 1), "is not a whole number"},
		{"serial with a leading zero", strings.Replace(statementText(tail), "1764489600", "01764489600", 1), "is not a whole number"},
		{"serial too large", strings.Replace(statementText(tail), "1764489600", "18446744073709551616", 1), "is not a whole number"},
		{"upper-case digest", strings.Replace(statementText(tail), d1, strings.ToUpper(d1), 1), "registry \"SHA256:"},
		{"short digest", strings.Replace(statementText(tail), d3, d3[:20], 1), "policy \"sha256:"},
		{"bad package", strings.Replace(statementText(tail), "ops-warden/ssh-signing", "Ops Warden", 1), "statement: package:"},
		{"too large", statementText(tail) + strings.Repeat("x", MaxStatementBytes), "more than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStatement([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParseStatement checks that whatever ParseStatement accepts, Marshal
// writes back byte for byte: one text, one statement.
func FuzzParseStatement(f *testing.F) {
	f.Add([]byte(statementText("registry: " + d1 + "\nregistry-file: " + d2 + "\npolicy: " + d3 + "\n")))
	f.Add([]byte(goodStatement))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatement(data)
		if err != nil {
			return
		}
		if got := st.Marshal(); string(got) != string(data) {
			t.Errorf("accepted %q, which Marshal writes as %q", data, got)
		}
	})
}
