package entities

import (
	"testing"

	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/internal/redact/redacttest"
)

// FuzzParse: Parse never panics; a document it accepts has a digest that
// parsing its canonical form again (JSON is YAML) reproduces; and what it
// refuses has a redacted form that depends on where and which rules the
// document breaks, not on the values it holds.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("schema: flex-auth.entities/v1\npolicy_package: a/b\nentities: {u: {x: {a: [1, {b: null}]}}}\n"))
	f.Add([]byte("schema: x\nentities: &a [*a]\n"))
	// Values with q and z wherever a rule can break, so that the
	// redacted form is compared on every kind of problem.
	f.Add([]byte("schema: qz\npolicy_package: Q/z\nqz: 1\nactions: [q, q, '', 1]\nentities:\n  qz: {q: {z: .nan, qz: 9007199254740993, q: 99999999999999999999}, q: 1, z: {1: 2, q: 1, q: 2}, '': {}}\n  q: [z]\n  z: {zq: !qz 1}\n"))
	f.Add([]byte("schema: flex-auth.entities/v1\npolicy_package: q/z\nentities: {q: {z: {q: [z, {\"q\": 1, \"q\": 2}]}}}\n"))
	f.Add([]byte("schema: 'qz\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse("f.yaml", src)
		if err != nil {
			checkRedacted(t, src, err)
			return
		}
		again, err := Parse("f.json", d.Canonical())
		if err != nil {
			t.Fatalf("the canonical form of an accepted document does not parse: %v\n%s", err, d.Canonical())
		}
		if again.Digest() != d.Digest() {
			t.Fatalf("digest changed through the canonical form: %s, then %s\n%s", d.Digest(), again.Digest(), d.Canonical())
		}
	})
}

// checkRedacted checks that the same document with q and z swapped, which
// breaks the same rules at the same places with other values, has the same
// redacted errors. The two letters are in no key, keyword or schema an
// entities document's structure depends on but YAML's tag seq, which is
// kept (with the word a swap would turn into it). The "did you mean" hint,
// which names a key of flex-auth's own, may differ.
func checkRedacted(t *testing.T, src []byte, err error) {
	t.Helper()
	_, err2 := Parse("f.yaml", redacttest.SwapQZ(src, "seq", "sez"))
	if err2 == nil {
		t.Fatalf("swapping q and z made the document good: %q", src)
	}
	a := redacttest.WithoutHints(redact.Message(err))
	b := redacttest.WithoutHints(redact.Message(err2))
	if a != b {
		t.Fatalf("the redacted form depends on what the document holds:\n%s\n%s", a, b)
	}
}
