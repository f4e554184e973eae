package entities

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/coulomb/flex-auth/internal/redact"
)

const good = `schema: flex-auth.entities/v1
policy_package: test/pkg
actions: [write, read]
entities:
  user:
    bob: {role: admin, groups: [ops, dev], age: 42, score: 1.5, active: true, manager: null}
    alice:
  record:
    record-1: {status: active}
  todo:
`

func TestParse(t *testing.T) {
	d, err := Parse("e.yaml", []byte(good))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := d.PolicyPackage(), "test/pkg"; got != want {
		t.Errorf("PolicyPackage: got %q, want %q", got, want)
	}
	if got, want := d.Actions(), []string{"read", "write"}; !cmp.Equal(got, want) {
		t.Errorf("Actions: got %v, want %v", got, want)
	}
	if got, want := d.Types(), []string{"record", "todo", "user"}; !cmp.Equal(got, want) {
		t.Errorf("Types: got %v, want %v", got, want)
	}
	if got, want := d.IDs("user"), []string{"alice", "bob"}; !cmp.Equal(got, want) {
		t.Errorf("IDs(user): got %v, want %v", got, want)
	}
	if got := d.IDs("todo"); got == nil || len(got) != 0 {
		t.Errorf("IDs(todo): got %#v, want an empty list", got)
	}
	if got := d.IDs("spaceship"); got != nil {
		t.Errorf("IDs(spaceship): got %v, want nil", got)
	}
	if got, want := d.Len(), 3; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	props, ok := d.Properties("user", "bob")
	want := map[string]any{"role": "admin", "groups": []any{"ops", "dev"}, "age": int64(42), "score": 1.5, "active": true, "manager": nil}
	if !ok || !cmp.Equal(props, want) {
		t.Errorf("Properties(user, bob): got %v, %v, want %v", props, ok, want)
	}
	if props, ok := d.Properties("user", "alice"); !ok || props == nil || len(props) != 0 {
		t.Errorf("Properties(user, alice): got %#v, %v, want an empty map", props, ok)
	}
	if _, ok := d.Properties("user", "carol"); ok {
		t.Errorf("Properties(user, carol): found an entity that is not there")
	}
	if _, ok := d.Properties("nope", "bob"); ok {
		t.Errorf("Properties(nope, bob): found an entity that is not there")
	}
}

// The digest names the content: a reordered, restyled, commented document
// with the same content has the same digest; any change of content
// changes it. It is the SHA-256 of the RFC 8785 form, which jsontext
// produces.
func TestDigest(t *testing.T) {
	d1 := mustParse(t, good)
	same := `# the same content, written otherwise
entities:
  todo: {}
  record: {record-1: {"status": "active"}}
  user:
    alice: {}
    bob:
      manager: ~
      active: yes_not_a_bool_in_1.2_but_a_string
actions:
  - read
  - write
policy_package: "test/pkg"
schema: flex-auth.entities/v1
`
	// yes_not_a_bool... is not the same: fix the value, keep the style.
	same = strings.Replace(same, "      active: yes_not_a_bool_in_1.2_but_a_string\n",
		"      active: true\n      groups:\n        - ops\n        - dev\n      age: 0x2A\n      score: 15e-1\n      role: 'admin'\n", 1)
	d2 := mustParse(t, same)
	if d1.Digest() != d2.Digest() {
		t.Errorf("same content, different digests:\n%s\n%s\n%s\n%s", d1.Digest(), d1.Canonical(), d2.Digest(), d2.Canonical())
	}
	canon := jsontext.Value(d1.Canonical()).Clone()
	if err := canon.Canonicalize(); err != nil || string(canon) != string(d1.Canonical()) {
		t.Errorf("Canonical is not in RFC 8785 form: %s", d1.Canonical())
	}
	if !strings.HasPrefix(d1.Digest(), "sha256:") || len(d1.Digest()) != 71 {
		t.Errorf("Digest: got %q", d1.Digest())
	}
	for _, change := range []struct{ from, to string }{
		{"role: admin", "role: Admin"},
		{"age: 42", "age: 43"},
		{"age: 42", "age: 42.5"},
		{"actions: [write, read]", "actions: [write]"},
		{"test/pkg", "test/other"},
		{"    alice:\n", "    alice: {x: 1}\n"},
		{"  todo:\n", ""},
	} {
		d := mustParse(t, strings.Replace(good, change.from, change.to, 1))
		if d.Digest() == d1.Digest() {
			t.Errorf("%q -> %q: the digest did not change", change.from, change.to)
		}
	}
}

func mustParse(t *testing.T, src string) *Document {
	t.Helper()
	d, err := Parse("e.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestParseErrors(t *testing.T) {
	head := "schema: flex-auth.entities/v1\npolicy_package: test/pkg\n"
	tests := []struct {
		name string
		src  string
		want []string // every error, without the "e.yaml:" prefix
	}{
		{"empty", "", []string{"1:1: the document is empty; want schema, policy_package and entities"}},
		{"comment only", "# nothing\n", []string{"1:1: the document is empty; want schema, policy_package and entities"}},
		{"not a mapping", "- a\n", []string{"1:1: an entities document must be a mapping with schema, policy_package, actions and entities, got a list"}},
		{"syntax", "schema: [\n", []string{"2:1: invalid YAML: did not find expected node content"}},
		{"two documents", head + "entities: {}\n---\nx: 1\n", []string{"4:1: more than one YAML document"}},
		{"missing keys", "actions: []\n", []string{
			`1:1: missing key "schema"`, `1:1: missing key "policy_package"`, `1:1: missing key "entities"`}},
		{"unknown key", head + "entities: {}\nentites: {}\n", []string{
			`4:1: unknown key "entites" (did you mean "entities"?); the keys are schema, policy_package, actions and entities`}},
		{"duplicate key", head + "entities: {}\nschema: x\n", []string{`4:1: duplicate key "schema" (the first is at line 1)`}},
		{"wrong schema", "schema: flex-auth.entities/v2\npolicy_package: a/b\nentities: {}\n", []string{
			`1:9: schema: want "flex-auth.entities/v1", got "flex-auth.entities/v2"`}},
		{"schema not a string", "schema: 1\npolicy_package: a/b\nentities: {}\n", []string{`1:9: schema must be a string, got the integer 1`}},
		{"bad package", "schema: flex-auth.entities/v1\npolicy_package: A/B\nentities: {}\n", []string{
			`2:17: policy_package: invalid name "A/B": want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most 128 bytes`}},
		{"actions not a list", head + "actions: read\nentities: {}\n", []string{`3:10: actions must be a list of action names, got "read"`}},
		{"bad actions", head + "actions: [read, 1, '', read]\nentities: {}\n", []string{
			`3:17: actions[1] must be a string, got the integer 1`,
			`3:20: actions[2] must not be empty`,
			`3:24: actions[3]: duplicate action "read" (the first is at line 3)`}},
		{"entities not a mapping", head + "entities: [a]\n", []string{
			`3:11: entities must be a mapping of entity types to their entities, got a list`}},
		{"type not a string", head + "entities:\n  1: {}\n", []string{`4:3: entities: an entity type must be a string, got the integer 1 (quote it)`}},
		{"empty type", head + "entities:\n  '': {}\n", []string{`4:3: entities: an entity type must not be empty`}},
		{"duplicate type", head + "entities:\n  user: {}\n  user: {}\n", []string{`5:3: entities: duplicate entity type "user" (the first is at line 4)`}},
		{"ids not a mapping", head + "entities:\n  user: [alice]\n", []string{`4:9: entities.user must be a mapping of ids to properties, got a list`}},
		{"numeric id", head + "entities:\n  user:\n    123: {}\n", []string{`5:5: entities.user: an id must be a string, got the integer 123 (quote it)`}},
		{"duplicate id", head + "entities:\n  user:\n    alice: {}\n    alice: {}\n", []string{`6:5: entities.user: duplicate id "alice" (the first is at line 5)`}},
		{"properties not a mapping", head + "entities:\n  user:\n    alice: admin\n", []string{
			`5:12: entities.user.alice: the properties of an entity must be a mapping, got "admin"`}},
		{"duplicate property", head + "entities:\n  user:\n    alice: {a: 1, a: 2}\n", []string{`5:19: entities.user.alice: duplicate key "a"`}},
		{"property key not a string", head + "entities:\n  user:\n    alice: {1: x}\n", []string{
			`5:13: entities.user.alice: keys must be strings, got the integer 1 (quote the key)`}},
		{"not JSON", head + "entities:\n  user:\n    alice: {a: .nan, b: !!binary aGk=}\n", []string{
			`5:16: entities.user.alice.a: .nan is not a JSON number`,
			`5:25: entities.user.alice.b: unsupported value a !!binary value`}},
		{"integer beyond JSON", head + "entities:\n  user:\n    alice: {n: 9007199254740992, m: [-9007199254740993], ok: 9007199254740991, x: .nan}\n", []string{
			`5:16: entities.user.alice.n: integer 9007199254740992 is beyond ±9007199254740991, which not every JSON reader holds exactly: write it as a string`,
			`5:38: entities.user.alice.m[0]: integer -9007199254740993 is beyond ±9007199254740991, which not every JSON reader holds exactly: write it as a string`,
			`5:83: entities.user.alice.x: .nan is not a JSON number`}},
		{"alias", head + "entities:\n  user:\n    alice: &p {a: 1}\n    bob: *p\n", []string{`5:12: YAML anchors and aliases are not supported`}},
		{"every problem at once", "schema: x\nentities: 1\nfoo: 2\n", []string{
			`1:1: missing key "policy_package"`,
			`1:9: schema: want "flex-auth.entities/v1", got "x"`,
			`2:11: entities must be a mapping of entity types to their entities, got the integer 1`,
			`3:1: unknown key "foo"; the keys are schema, policy_package, actions and entities`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("e.yaml", []byte(tt.src))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, strings.TrimPrefix(e.Error(), "e.yaml:"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadNoFile(t *testing.T) {
	if _, err := Load("testdata/nonexistent.yaml"); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want a file that does not exist", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: got %v, want not a regular file", err)
	}
}

// TestRedacted: an error's redacted form says where and which rule, not
// what the document holds.
func TestRedacted(t *testing.T) {
	_, err := Parse("e.yaml", []byte("schema: secret-1\npolicy_package: a/b\nactions: [secret-2, secret-2]\nentities: {user: {secret-3: {n: .nan}}}\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	got := redact.Message(err)
	want := strings.Join([]string{
		`e.yaml:1:9: schema: want "flex-auth.entities/v1", got <redacted>`,
		`e.yaml:3:21: actions[1]: duplicate action <redacted> (the first is at line 3)`,
		`e.yaml:4:33: entities.<redacted>.<redacted>.<redacted>: <redacted> is not a JSON number`,
	}, "\n")
	if got != want {
		t.Errorf("redacted:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(err.Error(), "secret-2") {
		t.Errorf("the full form leaves out the values: %v", err)
	}
}
