package entities

import (
	"testing"
)

// FuzzParse: Parse never panics, and a document it accepts has a digest
// that parsing its canonical form again (JSON is YAML) reproduces.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("schema: flex-auth.entities/v1\npolicy_package: a/b\nentities: {u: {x: {a: [1, {b: null}]}}}\n"))
	f.Add([]byte("schema: x\nentities: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse("f.yaml", src)
		if err != nil {
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
