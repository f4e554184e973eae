package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/internal/redact"
)

const fixture = "../examples/ops-warden/production_registry_snapshot.json"

// fixtureDigest was computed outside Go, with Python's json module:
//
//	d = json.load(open(f)); d.pop("digest")
//	hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":"),
//	    ensure_ascii=False).encode()).hexdigest()
//
// It pins the digest to what another language computes for the fixture.
const fixtureDigest = "sha256:57522a4d7480d7d72febe4e0fb97a792086beb7cdec90afa09f5fbe0905e4e13"

func testActor(name string, ttl, max int, extra ...string) Actor {
	return Actor{
		Name: name, Type: TypeOf(name), Principal: name,
		DefaultTTLHours: ttl, MaxTTLHours: max,
		Subjects: append([]string{IAMSubject(name), name}, extra...),
	}
}

// generalJCS returns the JCS form of s without its digest, in the order
// its actors stand, computed with encoding/json and jsontext's
// Value.Canonicalize: the general route, written by other hands, that the
// direct writer is checked against.
func generalJCS(t *testing.T, s *Snapshot) []byte {
	t.Helper()
	doc, err := json.Marshal(struct {
		Schema        string  `json:"schema"`
		Source        string  `json:"source"`
		PolicyPackage string  `json:"policy_package"`
		Actors        []Actor `json:"actors"`
	}{s.Schema, s.Source, s.PolicyPackage, s.Actors})
	if err != nil {
		t.Fatal(err)
	}
	content := jsontext.Value(doc)
	if err := content.Canonicalize(); err != nil {
		t.Fatal(err)
	}
	return content
}

func TestFixtureDigestMatchesIndependentComputation(t *testing.T) {
	s, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if s.Digest != fixtureDigest {
		t.Errorf("got digest %s, want %s", s.Digest, fixtureDigest)
	}
	if got := s.ComputeDigest(); got != fixtureDigest {
		t.Errorf("got computed digest %s, want %s", got, fixtureDigest)
	}
	data, _ := os.ReadFile(fixture)
	if got := s.Canonical(); !bytes.Equal(got, data) {
		t.Errorf("Canonical() of the loaded fixture differs from the file:\n%s", got)
	}
}

// The direct writers must agree with the general implementations: the JCS
// content with jsontext's canonicalization, the file form with
// encoding/json.
func TestEncodingsAgreeWithGeneralEncoders(t *testing.T) {
	snaps := map[string]*Snapshot{
		"one actor": New("ops-warden", "ops-warden/ssh-signing", []Actor{testActor("adm-a", 1, 1)}),
		"several": New("src", "pkg/x", []Actor{
			testActor("atm-z", 8, 8, "svc:z", "a@b.c"),
			testActor("agt-m", 24, 48, "role/x=y+z"),
			testActor("adm-a", 1, 8760),
		}),
	}
	for name, s := range snaps {
		t.Run(name, func(t *testing.T) {
			want := generalJCS(t, s)
			if got := s.AppendContent(nil); !bytes.Equal(got, want) {
				t.Errorf("AppendContent:\ngot  %s\nwant %s", got, want)
			}

			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(s); err != nil {
				t.Fatal(err)
			}
			if got := s.Canonical(); !bytes.Equal(got, buf.Bytes()) {
				t.Errorf("Canonical:\ngot  %s\nwant %s", got, buf.Bytes())
			}
		})
	}
}

func TestNewNormalizes(t *testing.T) {
	a := New("s", "p", []Actor{testActor("atm-b", 1, 1, "x", "x"), testActor("adm-a", 1, 1)})
	b := New("s", "p", []Actor{testActor("adm-a", 1, 1), testActor("atm-b", 1, 1, "x")})
	if !bytes.Equal(a.Canonical(), b.Canonical()) {
		t.Errorf("order and duplicates changed the output:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	if got, want := strings.Join(a.Actors[1].Subjects, ","), "atm-b,iam:atm-b,x"; got != want {
		t.Errorf("got subjects %s, want %s", got, want)
	}
	if a.Lookup("atm-b") == nil || a.Lookup("adm-a") == nil || a.Lookup("agt-c") != nil {
		t.Error("Lookup does not find exactly the registered actors")
	}
}

// A reordered file keeps its digest: the digest is over the normalized
// content, so only a content edit invalidates it.
func TestParseAcceptsReorderedFile(t *testing.T) {
	s := New("ops-warden", "p", []Actor{testActor("adm-a", 1, 1), testActor("agt-b", 1, 1)})
	reordered := New("ops-warden", "p", []Actor{testActor("adm-a", 1, 1), testActor("agt-b", 1, 1)})
	reordered.Actors[0], reordered.Actors[1] = reordered.Actors[1], reordered.Actors[0]
	reordered.Actors[0].Subjects[0], reordered.Actors[0].Subjects[1] = reordered.Actors[0].Subjects[1], reordered.Actors[0].Subjects[0]
	data := reordered.AppendCanonical(nil)
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) || got.Digest != s.Digest {
		t.Errorf("got %+v, want %+v", got, s)
	}
}

func TestParseErrors(t *testing.T) {
	valid := string(New("ops-warden", "ops-warden/ssh-signing", []Actor{testActor("adm-a", 8, 8), testActor("agt-b", 24, 24)}).Canonical())
	edit := func(old, new string) string {
		if !strings.Contains(valid, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(valid, old, new, 1)
	}
	tests := []struct {
		name string
		data string
		want []string // every line of the error, in order
	}{
		{"ttl out of range", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 0`),
			[]string{"actors[1].max_ttl_hours: must be between 1 and 8760, got 0"}},
		{"ttl above range", edit(`"default_ttl_hours": 8`, `"default_ttl_hours": 8761`),
			[]string{"actors[0].default_ttl_hours: must be between 1 and 8760, got 8761"}},
		{"ttl as string", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": "24"`),
			[]string{`actors[1].max_ttl_hours: want an integer, got string "24"`}},
		{"ttl as float", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 24.0`),
			[]string{`actors[1].max_ttl_hours: want an integer, got 24.0`}},
		{"default above max", edit(`"default_ttl_hours": 24`, `"default_ttl_hours": 25`),
			[]string{`actors[1].default_ttl_hours: 25 is above max_ttl_hours 24`}},
		{"wrong schema", edit(`"flex-auth.registry/v1"`, `"flex-auth.registry/v2"`),
			[]string{`schema: want "flex-auth.registry/v1", got "flex-auth.registry/v2"`}},
		{"unknown member", edit(`"type": "agt",`, `"type": "agt", "extra": [1, {"a": 2}],`),
			[]string{`actors[1].extra: unknown member`}},
		{"key material", edit(`"type": "agt",`, `"type": "agt", "vault_token": "s.xyz",`),
			[]string{`actors[1].vault_token: unknown member that looks like key material; a registry snapshot is a non-secret fixture and never carries credentials`}},
		{"duplicate member", edit(`"type": "agt",`, `"type": "agt", "type": "agt",`),
			[]string{`actors[1].type: duplicate member`}},
		{"duplicate member spelled with an escape", edit(`"type": "agt",`, `"type": "agt", "typ\u0065": "agt",`),
			[]string{`actors[1].type: duplicate member`}},
		{"duplicate member after other problems", edit(`"flex-auth.registry/v1",`, `1, "source": "x",`),
			[]string{`schema: want a string, got number 1`, `source: duplicate member`}},
		{"duplicate actor", edit(`"name": "agt-b"`, `"name": "adm-a"`),
			[]string{`actors[1].name: duplicate actor "adm-a" (also actors[0])`}},
		{"bad name", edit(`"name": "agt-b"`, `"name": "agt-B"`),
			[]string{`actors[1].name: invalid actor name "agt-B": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`}},
		{"type not prefix", edit(`"type": "agt"`, `"type": "adm"`),
			[]string{`actors[1].type: want "agt", the prefix of "agt-b", got "adm"`}},
		{"bad principal", edit(`"principal": "agt-b"`, `"principal": "Agt"`),
			[]string{`actors[1].principal: invalid principal "Agt": want ^[a-z_][a-z0-9_-]{0,31}$`}},
		{"claims another identity", edit(`"iam:agt-b"`, `"iam:agt-b", "iam:adm-a"`),
			[]string{`actors[1].subjects[2]: subject "iam:adm-a" is actor "adm-a"'s identity; binding it here would let this actor sign as "adm-a"`}},
		{"missing implied subject", edit(`"iam:agt-b"`, `"svc:b"`),
			[]string{`actors[1].subjects: missing "iam:agt-b"; every actor is bound to its name and its iam: form`}},
		{"bad subject", edit(`"iam:agt-b"`, `"iam:agt-b", "a b"`),
			[]string{`actors[1].subjects[2]: invalid subject "a b": want 1 to 256 bytes of [A-Za-z0-9._:/@+=-]`}},
		{"duplicate subject", edit(`"iam:agt-b"`, `"iam:agt-b", "iam:agt-b"`),
			[]string{`actors[1].subjects[2]: duplicate subject "iam:agt-b"`}},
		{"no actors", `{"schema": "flex-auth.registry/v1", "digest": "sha256:` + strings.Repeat("0", 64) + `", "source": "s", "policy_package": "p", "actors": []}`,
			[]string{`actors: no actors; a registry needs at least one`}},
		{"hand edit", edit(`"principal": "agt-b"`, `"principal": "agt-c"`),
			[]string{`digest: digest does not match the content`}},
		{"several problems", `{"schema": 1, "actors": [{"name": "agt-x", "max_ttl_hours": "2"}]}`,
			[]string{
				`schema: want a string, got number 1`,
				`actors[0].max_ttl_hours: want an integer, got string "2"`,
				`actors[0].type: missing`, `actors[0].principal: missing`,
				`actors[0].default_ttl_hours: missing`, `actors[0].subjects: missing`,
				`digest: missing`, `source: missing`, `policy_package: missing`,
			}},
		{"syntax", "{\n  \"schema\": }", []string{`line 2, column 13: invalid character '}' at start of value`}},
		{"lone surrogate", edit(`"principal": "agt-b"`, `"principal": "agt-b\ud800"`),
			[]string{`line 21, column 26: invalid surrogate pair`}},
		{"lone low surrogate", edit(`"principal": "agt-b"`, `"principal": "agt-b\udc00\ud800"`),
			[]string{"line 21, column 26: invalid surrogate pair `\\udc00\\ud800` in string"}},
		{"surrogate pair decoded", edit(`"principal": "agt-b"`, `"principal": "agt-\ud83d\ude00"`),
			[]string{`actors[1].principal: invalid principal "agt-😀"`}},
		{"invalid UTF-8", edit(`"principal": "agt-b"`, "\"principal\": \"agt-\xffb\""),
			[]string{`line 21, column 25: invalid UTF-8`}},
		{"control character", edit(`"principal": "agt-b"`, "\"principal\": \"agt\tb\""),
			[]string{`line 21, column 24: invalid character '\t' in string (expecting non-control character)`}},
		{"bad escape", edit(`"principal": "agt-b"`, `"principal": "agt\qb"`),
			[]string{"line 21, column 24: invalid escape sequence `\\q` in string"}},
		{"unterminated string", valid[:strings.Index(valid, `"adm-a"`)+4],
			[]string{`line 8, column 19: unexpected EOF`}},
		{"bad number", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 2.`),
			[]string{`line 23, column 26: invalid character ',' in number (expecting digit)`}},
		{"number without digits", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": -`),
			[]string{`line 23, column 25: invalid character ',' in number (expecting digit)`}},
		{"integer out of range", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 9223372036854775808`),
			[]string{`actors[1].max_ttl_hours: want an integer, got 9223372036854775808`}},
		{"integer with exponent", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 24e0`),
			[]string{`actors[1].max_ttl_hours: want an integer, got 24e0`}},
		{"truncated", valid[:40], []string{`line 3, column 2: unexpected EOF`}},
		{"trailing data", valid + "{}", []string{`line 31, column 1: data after the snapshot`}},
		{"not an object", `[]`, []string{`want an object, got an array`}},
		{"empty", ``, []string{`line 1, column 1: unexpected end of input`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data))
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("error %d: got %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLoadErrorNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/snap.json"
	if err := os.WriteFile(path, []byte(`{"schema": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": schema: want a string") {
		t.Errorf("got %v, want an error starting with %s: schema", err, path)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, path+": ") {
			t.Errorf("line %q does not name the file", line)
		}
	}
}

func largeSnapshot(n int) *Snapshot {
	actors := make([]Actor, n)
	for i := range actors {
		name := fmt.Sprintf("%s-actor-%06d", Types[i%3], i)
		actors[i] = testActor(name, 8, 24, fmt.Sprintf("role/team-%d", i%100))
	}
	return New("ops-warden", DefaultPolicyPackage, actors)
}

func BenchmarkParse100k(b *testing.B) {
	data := largeSnapshot(100_000).Canonical()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonical100k(b *testing.B) {
	s := largeSnapshot(100_000)
	b.ReportAllocs()
	for b.Loop() {
		s.Canonical()
		s.ComputeDigest()
	}
}

// chunkWriter records the chunks it is given and fails from the failAt-th
// call on, when failAt > 0.
type chunkWriter struct {
	buf    bytes.Buffer
	chunks []int
	failAt int
}

var errWrite = errors.New("disk full")

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.chunks = append(w.chunks, len(p))
	if w.failAt > 0 && len(w.chunks) >= w.failAt {
		return 0, errWrite
	}
	return w.buf.Write(p)
}

func TestWriteCanonicalMatchesCanonical(t *testing.T) {
	fix, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		snap       *Snapshot
		wantChunks int // at least
	}{
		{"no actors", New("ops-warden", DefaultPolicyPackage, nil), 1},
		{"fixture", fix, 1},
		{"3000 actors in several chunks", largeSnapshot(3000), 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w chunkWriter
			n, err := tt.snap.WriteCanonical(&w)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.snap.Canonical()
			if !bytes.Equal(w.buf.Bytes(), want) {
				t.Errorf("WriteCanonical wrote %d bytes that differ from Canonical's %d", w.buf.Len(), len(want))
			}
			if n != int64(len(want)) {
				t.Errorf("returned %d bytes, want %d", n, len(want))
			}
			if len(w.chunks) < tt.wantChunks {
				t.Errorf("got %d chunks, want at least %d", len(w.chunks), tt.wantChunks)
			}
			for i, c := range w.chunks {
				if c > 64<<10 {
					t.Errorf("chunk %d is %d bytes, want at most 64 KiB", i, c)
				}
			}
		})
	}
}

func TestWriteCanonicalStopsAtTheFirstError(t *testing.T) {
	w := chunkWriter{failAt: 3}
	n, err := largeSnapshot(3000).WriteCanonical(&w)
	if !errors.Is(err, errWrite) {
		t.Fatalf("got error %v, want %v", err, errWrite)
	}
	if len(w.chunks) != 3 {
		t.Errorf("got %d writes, want 3 (none after the failure)", len(w.chunks))
	}
	if n != int64(w.buf.Len()) {
		t.Errorf("returned %d bytes, want %d (the bytes written before the failure)", n, w.buf.Len())
	}
}

// A producer that follows the contract's wording literally hashes the
// document in the order it wrote it. Such a file loads, and is served
// with the digest of its normalized content.
func TestParseAcceptsDigestOfDocumentAsWritten(t *testing.T) {
	s := New("ops-warden", "p", []Actor{testActor("adm-a", 1, 1), testActor("agt-b", 1, 1)})
	canonicalDigest := s.Digest
	s.Actors[0], s.Actors[1] = s.Actors[1], s.Actors[0]
	sum := sha256.Sum256(generalJCS(t, s))
	s.Digest = "sha256:" + hex.EncodeToString(sum[:])
	if s.Digest == canonicalDigest {
		t.Fatal("test is void: the written order hashes like the canonical one")
	}

	got, err := Parse(s.AppendCanonical(nil))
	if err != nil {
		t.Fatalf("got %v, want the as-written digest accepted", err)
	}
	if got.Digest != canonicalDigest {
		t.Errorf("got digest %s, want the canonical content's %s", got.Digest, canonicalDigest)
	}

	s.Digest = "sha256:" + strings.Repeat("ab", 32)
	if _, err := Parse(s.AppendCanonical(nil)); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("got %v, want ErrDigestMismatch for a digest of neither form", err)
	}
}

// TestParseErrorsRedacted checks the redacted form of each kind of
// problem: the JSON path (a member name of the file's own left out) and
// the rule broken, never the value, which the full message quotes.
func TestParseErrorsRedacted(t *testing.T) {
	valid := string(New("ops-warden", "ops-warden/ssh-signing", []Actor{testActor("adm-a", 8, 8), testActor("agt-b", 24, 24)}).Canonical())
	edit := func(old, new string) string {
		if !strings.Contains(valid, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(valid, old, new, 1)
	}
	const secret = "s3cr3t"
	tests := []struct {
		name string
		data string
		want []string // every line of the redacted form, in order
	}{
		{"ttl out of range", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 31337`),
			[]string{"actors[1].max_ttl_hours: must be between 1 and 8760, got <redacted>"}},
		{"ttl as string", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": "s3cr3t"`),
			[]string{"actors[1].max_ttl_hours: want an integer, got a string"}},
		{"ttl as float", edit(`"max_ttl_hours": 24`, `"max_ttl_hours": 24.31337`),
			[]string{"actors[1].max_ttl_hours: want an integer, got <redacted>"}},
		{"default above max", edit(`"default_ttl_hours": 24`, `"default_ttl_hours": 31337`),
			[]string{"actors[1].default_ttl_hours: must be between 1 and 8760, got <redacted>"}},
		{"wrong schema", edit(`"flex-auth.registry/v1"`, `"s3cr3t"`),
			[]string{`schema: want "flex-auth.registry/v1", got <redacted>`}},
		{"schema of another type", edit(`"flex-auth.registry/v1"`, `31337`),
			[]string{`schema: want a string, got a number`}},
		{"unknown member", edit(`"type": "agt",`, `"type": "agt", "s3cr3t": 1,`),
			[]string{`actors[1].<redacted>: unknown member`}},
		{"key material", edit(`"source"`, `"s3cr3t_token": "x", "source"`),
			[]string{`<redacted>: unknown member that looks like key material; a registry snapshot is a non-secret fixture and never carries credentials`}},
		{"duplicate member", edit(`"type": "agt",`, `"type": "agt", "type": "agt",`),
			[]string{`actors[1].type: duplicate member`}},
		{"duplicate unknown member", edit(`"type": "agt",`, `"type": "agt", "s3cr3t": 1, "s3cr3t": 2,`),
			[]string{`actors[1].<redacted>: unknown member`, `actors[1].<redacted>: duplicate member`}},
		{"duplicate actor", edit(`"name": "agt-b"`, `"name": "adm-a"`),
			[]string{`actors[1].name: duplicate actor <redacted> (also actors[0])`}},
		{"bad name", edit(`"name": "agt-b"`, `"name": "agt-s3cr3t!"`),
			[]string{`actors[1].name: invalid actor name <redacted>: want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`}},
		{"type not prefix", edit(`"type": "agt"`, `"type": "s3cr3t"`),
			[]string{`actors[1].type: want the prefix of the actor's name`}},
		{"bad principal", edit(`"principal": "agt-b"`, `"principal": "S3CR3T"`),
			[]string{`actors[1].principal: invalid principal <redacted>: want ^[a-z_][a-z0-9_-]{0,31}$`}},
		{"claims another identity", edit(`"iam:agt-b"`, `"iam:agt-b", "iam:adm-a"`),
			[]string{`actors[1].subjects[2]: the subject is another actor's identity; binding it here would let this actor sign as that actor`}},
		{"missing implied subject", edit(`"iam:agt-b"`, `"svc:s3cr3t"`),
			[]string{`actors[1].subjects: missing the actor's iam: form; every actor is bound to its name and its iam: form`}},
		{"bad subject", edit(`"iam:agt-b"`, `"iam:agt-b", "s3cr3t subject"`),
			[]string{`actors[1].subjects[2]: invalid subject <redacted>: want 1 to 256 bytes of [A-Za-z0-9._:/@+=-]`}},
		{"duplicate subject", edit(`"iam:agt-b"`, `"iam:agt-b", "s3cr3t", "s3cr3t"`),
			[]string{`actors[1].subjects[3]: duplicate subject <redacted>`}},
		{"bad digest", edit(`"digest": "sha256:`, `"digest": "s3cr3t:`),
			[]string{`digest: want "sha256:" and 64 lowercase hex digits, got <redacted>`}},
		{"bad source", edit(`"source": "ops-warden"`, `"source": "S3CR3T"`),
			[]string{`source: invalid name <redacted>: want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most 128 bytes`}},
		{"bad literal", edit(`"source": "ops-warden"`, `"source": s3cr3t`), []string{`line 4, column 13: not valid JSON`}},
		{"lone surrogates", edit(`"principal": "agt-b"`, `"principal": "agt-b\udc00s3cr3t\ud800"`), []string{"line 21, column 26: not valid JSON"}},
		{"bad escape", edit(`"principal": "agt-b"`, `"principal": "agt\s3cr3t"`), []string{"line 21, column 24: not valid JSON"}},
		{"trailing data", valid + "{}", []string{`line 31, column 1: data after the snapshot`}},
		{"hand edit", edit(`"principal": "agt-b"`, `"principal": "agt-c"`),
			[]string{`digest: digest does not match the content (content is sha256:`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data))
			if err == nil {
				t.Fatal("got no error")
			}
			full, redacted := err.Error(), redact.Message(&FileError{File: "r.json", Errs: err.(Errors)})
			if (strings.Contains(tt.data, secret) || strings.Contains(tt.data, "31337")) && full == strings.ReplaceAll(redacted, "r.json: ", "") {
				t.Errorf("the full message is the redacted one, %q: the case tests nothing", full)
			}
			got := strings.Split(redacted, "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), redacted)
			}
			for i := range got {
				if want := "r.json: " + tt.want[i]; !strings.HasPrefix(got[i], want) {
					t.Errorf("problem %d: got %q, want %q", i, got[i], want)
				}
			}
			if strings.Contains(strings.ToLower(redacted), secret) || strings.Contains(redacted, "31337") {
				t.Errorf("redacted form quotes the file: %q", redacted)
			}
		})
	}
}
