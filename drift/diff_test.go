package drift

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	"github.com/coulomb/flex-auth/drift/udiff/udifftest"
	"github.com/coulomb/flex-auth/registry"
)

// TestLargeDiffIsPinned: the reports on two 100,000-actor registries are
// a pure function of the two files, pinned by golden digests: for two that
// differ in one actor in a hundred (BenchmarkDrift's), and for two with no
// actor in common (which made the diff panic before it had a step budget).
// The diff's search is bounded by a count of steps, not by a clock (see
// drift/udiff's TestNoClock), so no machine, however busy, gives another
// report.
func TestLargeDiffIsPinned(t *testing.T) {
	if testing.Short() {
		t.Skip("two 100,000-actor registries")
	}
	tests := []struct {
		name   string
		golden string
		files  func() (expected, actual []byte)
	}{
		{"one in a hundred", "large-100k", func() ([]byte, []byte) {
			e, a := benchSnapshots(100_000)
			return e.Canonical(), a.Canonical()
		}},
		{"no actor in common", "large-100k-disjoint", func() ([]byte, []byte) {
			return fleet(100_000, "agt-batch-", nil), fleet(100_000, "agt-fleet-", nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, a := tt.files()
			r := Compare(mustSide(t, "expected.json", e), mustSide(t, "actual.json", a))
			h := sha256.New()
			n, err := countingWriter(h, func(w io.Writer) error { return r.Render(w, Text, nil) })
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%d bytes, sha256 %x\n", n, h.Sum(nil))
			checkGolden(t, "testdata/golden/"+tt.golden+".txt.digest", []byte(got))
		})
	}
}

// countingWriter calls write with a writer to w and returns how many
// bytes it wrote.
func countingWriter(w io.Writer, write func(io.Writer) error) (int64, error) {
	c := &counter{w: w}
	err := write(c)
	return c.n, err
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// fleet returns the canonical snapshot of n actors named prefix and a
// number, each passed through edit if it is not nil.
func fleet(n int, prefix string, edit func(*registry.Actor)) []byte {
	actors := make([]registry.Actor, n)
	for i := range actors {
		name := fmt.Sprintf("%s%07d", prefix, i)
		actors[i] = registry.Actor{Name: name, Type: "agt", Principal: "agt-fleet", DefaultTTLHours: 8, MaxTTLHours: 24,
			Subjects: []string{name, registry.IAMSubject(name)}}
		if edit != nil {
			edit(&actors[i])
		}
	}
	return registry.New(registry.DefaultSource, registry.DefaultPolicyPackage, actors).Canonical()
}

// largeShapes returns pairs of registries (EXPECTED, ACTUAL) of n actors
// that drift meets rarely but must handle in bounded time: every actor
// changed, no actor in common, and an ACTUAL file that lists its actors
// in reverse order.
func largeShapes(n int) map[string][2][]byte {
	actual := fleet(n, "agt-fleet-", nil)
	changed := fleet(n, "agt-fleet-", func(a *registry.Actor) { a.MaxTTLHours = 12 })
	return map[string][2][]byte{
		"every actor changed":     {changed, actual},
		"no actor in common":      {fleet(n, "agt-batch-", nil), actual},
		"actors in reverse order": {changed, reverseActors(actual)},
	}
}

// reverseActors returns a canonical snapshot with its actors in reverse
// order: the same registry, not in canonical form.
func reverseActors(canonical []byte) []byte {
	start := bytes.Index(canonical, []byte("\n    {\n")) + 1
	end := bytes.LastIndex(canonical, []byte("\n  ]\n")) + 1
	blocks := bytes.SplitAfter(bytes.TrimSuffix(canonical[start:end], []byte("\n")), []byte("\n    },\n"))
	var out bytes.Buffer
	out.Write(canonical[:start])
	for i := len(blocks) - 1; i >= 0; i-- {
		b := bytes.TrimSuffix(bytes.TrimSuffix(blocks[i], []byte(",\n")), []byte("\n"))
		out.Write(b)
		if i > 0 {
			out.WriteString(",")
		}
		out.WriteString("\n")
	}
	out.Write(canonical[end:])
	return out.Bytes()
}

// TestLargeShapes: on the rare shapes, the report is right, the diff
// turns ACTUAL into EXPECTED, and, where the actors line up, it shows
// each actor's change on its own. (Before the diff had a step budget, two
// registries with no actor in common made it panic.)
func TestLargeShapes(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for name, files := range largeShapes(n) {
		t.Run(name, func(t *testing.T) {
			e, a := mustSide(t, "expected.json", files[0]), mustSide(t, "actual.json", files[1])
			r := Compare(e, a)
			if got := udifftest.Apply(t, string(files[1]), r.Diff); got != string(r.Want) {
				t.Fatal("the diff applied to ACTUAL does not give EXPECTED")
			}
			hunks := bytes.Count([]byte(r.Diff), []byte("\n@@ "))
			switch name {
			case "every actor changed":
				if len(r.Changes) != n || hunks < n/2 {
					t.Errorf("got %d changes and %d hunks, want %d changes and a hunk for every actor or two", len(r.Changes), hunks, n)
				}
			case "no actor in common":
				if len(r.Changes) != 2*n {
					t.Errorf("got %d changes, want %d", len(r.Changes), 2*n)
				}
			case "actors in reverse order":
				if len(r.Changes) != n || len(r.Findings) != 1 || r.Findings[0].Kind != Formatting {
					t.Errorf("got %d changes and findings %+v, want %d and one formatting finding", len(r.Changes), r.Findings, n)
				}
			}
		})
	}
}
