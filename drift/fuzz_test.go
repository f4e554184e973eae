package drift

import (
	"io"
	"os"
	"reflect"
	"testing"

	"github.com/coulomb/flex-auth/drift/udiff/udifftest"
)

// FuzzDrift compares two arbitrary byte strings as snapshot files. It must
// never panic; a valid snapshot compared with itself has no changes, and
// is in sync exactly when its bytes are canonical and its digest right;
// the report of A against B mirrors that of B against A; and the diff
// turns ACTUAL's text into EXPECTED's canonical form.
func FuzzDrift(f *testing.F) {
	for _, path := range []string{
		"../examples/ops-warden/production_registry_snapshot.json",
		"testdata/cases/reorder-only/actual.json",
		"testdata/cases/formatting-only/actual.json",
		"testdata/cases/hand-edited/actual.json",
		"testdata/cases/actor-removed/actual.json",
		"testdata/cases/policy-package/actual.json",
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, data)
		fixture, _ := os.ReadFile("../examples/ops-warden/production_registry_snapshot.json")
		f.Add(fixture, data)
	}
	f.Add([]byte(`{}`), []byte(`[`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		sa, errA := ParseSnapshot("a.json", a)
		sb, errB := ParseSnapshot("b.json", b)
		if errA != nil || errB != nil {
			return
		}
		self := Compare(sa, sa)
		if len(self.Changes) != 0 {
			t.Fatalf("a snapshot against itself: got changes %v, want none", self.Changes)
		}
		if got, want := self.InSync(), sa.Canonical && sa.DigestMatches(); got != want {
			t.Fatalf("a snapshot against itself: InSync() = %v, want %v (findings %+v)", got, want, self.Findings)
		}
		canon, err := ParseSnapshot("c.json", self.Want)
		if err != nil {
			t.Fatalf("the canonical form does not load: %v", err)
		}
		if r := Compare(canon, canon); !r.InSync() || r.Diff != "" {
			t.Fatalf("a canonical snapshot against itself is not in sync: %+v", r.Findings)
		}

		ab, ba := Compare(sa, sb), Compare(sb, sa)
		if len(ab.Changes) != len(ba.Changes) {
			t.Fatalf("got %d changes for A vs B and %d for B vs A", len(ab.Changes), len(ba.Changes))
		}
		mirror := map[Op]Op{OpAdd: OpRemove, OpRemove: OpAdd, OpChange: OpChange}
		byPath := make(map[string]Change, len(ba.Changes))
		for _, c := range ba.Changes {
			byPath[c.Path()] = c
		}
		for _, c := range ab.Changes {
			m, ok := byPath[c.Path()]
			if !ok || m.Op != mirror[c.Op] || !reflect.DeepEqual(m.Before, c.After) || !reflect.DeepEqual(m.After, c.Before) {
				t.Fatalf("A vs B has %s %s %v -> %v; B vs A has %s %v -> %v", c.Op, c.Path(), c.Before, c.After, m.Op, m.Before, m.After)
			}
		}
		for _, r := range []*Report{ab, ba} {
			if got := udifftest.Apply(t, string(r.Actual.Text), r.Diff); got != string(r.Want) {
				t.Fatalf("the diff applied to ACTUAL does not give EXPECTED")
			}
			for _, f := range Formats {
				if err := r.Render(io.Discard, f, io.Discard); err != nil {
					t.Fatal(err)
				}
			}
			if md := r.Markdown(2000); len(md) > 2000 {
				t.Fatalf("Markdown(2000) is %d bytes", len(md))
			}
		}
	})
}
