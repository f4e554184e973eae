package udiff

import (
	"testing"

	"github.com/coulomb/flex-auth/drift/udiff/udifftest"
)

// FuzzDiff diffs two arbitrary texts, with labels drawn from seed and a
// budget from nothing to plenty. The diff must pair only lines that are
// the same, turn the old text into the new one, and be the same on a
// second run.
func FuzzDiff(f *testing.F) {
	f.Add([]byte("a\nb\nc\n"), []byte("a\nc\nd"), uint16(0), uint8(4))
	f.Add([]byte("{\n  x\n}\n{\n  y\n}\n"), []byte("{\n  y\n}\n"), uint16(0x1234), uint8(1))
	f.Add([]byte(""), []byte("\n\n"), uint16(7), uint8(0))
	f.Fuzz(func(t *testing.T, a, b []byte, seed uint16, steps uint8) {
		budgets := []int{0, 1, 10, 100, -1}
		ta, tb := Split(a), Split(b)
		if seed != 0 {
			ta.SetLabels(labels(ta.Len(), seed))
			tb.SetLabels(labels(tb.Len(), seed>>8|seed<<8))
		}
		n := budgets[int(steps)%len(budgets)]
		if n < 0 {
			n = budget(ta.Len() + tb.Len())
		}
		s := diff(ta, tb, nil, n)
		checkScript(t, s)
		got := s.Unified("a", "b")
		if udifftest.Apply(t, string(a), got) != string(b) {
			t.Fatalf("the diff does not apply:\n%s", got)
		}
		if again := diff(ta, tb, nil, n).Unified("a", "b"); again != got {
			t.Fatalf("a second run gave another diff:\n%s\nthen:\n%s", got, again)
		}
	})
}

// labels returns n labels from 0 to 2, drawn from seed's bits.
func labels(n int, seed uint16) []int32 {
	ls := make([]int32, n)
	for k := range ls {
		ls[k] = int32(seed>>(k%16)&1) + int32(seed>>((k+5)%16)&1)
	}
	return ls
}
