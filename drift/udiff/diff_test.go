package udiff

import (
	"bytes"
	"fmt"
	"go/build"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/drift/udiff/udifftest"
)

// randomText returns n lines drawn from words, some of them edited from
// base.
func randomText(rng *rand.Rand, words []string, n int) []byte {
	var b bytes.Buffer
	for range n {
		b.WriteString(words[rng.IntN(len(words))] + "\n")
	}
	return b.Bytes()
}

// edit returns text with a few lines deleted, inserted or changed.
func edit(rng *rand.Rand, text []byte, words []string) []byte {
	lines := strings.SplitAfter(string(text), "\n")
	lines = lines[:len(lines)-1]
	for n := 1 + rng.IntN(4); n > 0; n-- {
		k := rng.IntN(len(lines) + 1)
		switch rng.IntN(3) {
		case 0:
			if k < len(lines) {
				lines = slices.Delete(lines, k, k+1)
			}
		case 1:
			lines = slices.Insert(lines, k, words[rng.IntN(len(words))]+"\n")
		default:
			if k < len(lines) {
				lines[k] = words[rng.IntN(len(words))] + "\n"
			}
		}
	}
	return []byte(strings.Join(lines, ""))
}

// TestMatchesGNU compares the diffs of random texts, drawn from a few
// lines that repeat a lot, with GNU diff -u's. Where several shortest
// diffs exist that do not differ only by sliding a run of changes, GNU
// diff's choice comes from details of its search (it also sets aside
// lines that repeat too often) that udiff does not copy: a few of these
// texts give another shortest diff. Texts whose lines rarely repeat, such
// as registries with labelled lines, give diff -u's hunks (drift's tests).
func TestMatchesGNU(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	words := []string{"{", "}", "  a", "  b", "  c", "  d", "x", "y"}
	same, n := 0, 300
	for i := range n {
		a := randomText(rng, words, rng.IntN(40))
		b := edit(rng, a, words)
		if rng.IntN(4) == 0 {
			b = randomText(rng, words, rng.IntN(40))
		}
		got := Diff(Split(a), Split(b), nil).Unified("a", "b")
		if udifftest.Apply(t, string(a), got) != string(b) {
			t.Fatalf("case %d: the diff does not apply", i)
		}
		want := udifftest.GNU(t, a, b, "a", "b")
		if got == want {
			same++
			continue
		}
		if gotN, wantN := changedLines(got), changedLines(want); gotN != wantN {
			t.Errorf("case %d: got %d changed lines, GNU diff %d\ngot:\n%s\nwant:\n%s", i, gotN, wantN, got, want)
		}
	}
	if same < n*95/100 {
		t.Errorf("only %d of %d diffs equal GNU diff -u's, want at least 95%%", same, n)
	}
}

// changedLines counts the - and + lines of a unified diff.
func changedLines(diff string) int {
	n := 0
	for _, l := range strings.Split(diff, "\n") {
		if (strings.HasPrefix(l, "-") || strings.HasPrefix(l, "+")) && !strings.HasPrefix(l, "--- ") && !strings.HasPrefix(l, "+++ ") {
			n++
		}
	}
	return n
}

// TestApplies: on random texts, with and without labels and anchors, and
// with budgets from nothing to plenty, the diff turns the old text into
// the new one.
func TestApplies(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	words := []string{"{", "}", "a", "b", "c", "d"}
	for i := range 500 {
		a, b := randomText(rng, words, rng.IntN(60)), randomText(rng, words, rng.IntN(60))
		if rng.IntN(2) == 0 {
			b = edit(rng, a, words)
		}
		if rng.IntN(5) == 0 {
			b = bytes.TrimSuffix(b, []byte("\n"))
		}
		ta, tb := Split(a), Split(b)
		if rng.IntN(2) == 0 {
			ta.SetLabels(randomLabels(rng, ta.Len()))
			tb.SetLabels(randomLabels(rng, tb.Len()))
		}
		budget := []int{0, 1, 10, 100, budget(ta.Len() + tb.Len())}[rng.IntN(5)]
		s := diff(ta, tb, nil, budget)
		checkScript(t, s)
		if got := udifftest.Apply(t, string(a), s.Unified("a", "b")); got != string(b) {
			t.Fatalf("case %d: the diff does not apply", i)
		}
	}
}

// TestHashCollisions: the hash that finds a line's class never decides
// it: with every line hashing alike, the diffs are the same.
func TestHashCollisions(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	words := []string{"{", "}", "a", "b", "c", "d"}
	type pair struct{ a, b *Text }
	var cases []pair
	var want []string
	for i := range 100 {
		a := Split(randomText(rng, words, rng.IntN(40)))
		b := Split(edit(rng, a.data, words))
		if i%2 == 0 {
			a.SetLabels(randomLabels(rng, a.Len()))
			b.SetLabels(randomLabels(rng, b.Len()))
		}
		cases = append(cases, pair{a, b})
		want = append(want, Diff(a, b, nil).Unified("a", "b"))
	}
	defer func(h func(maphash.Seed, uint32, []byte) uint64) { hashLine = h }(hashLine)
	hashLine = func(maphash.Seed, uint32, []byte) uint64 { return 42 }
	for i, c := range cases {
		if got := Diff(c.a, c.b, nil).Unified("a", "b"); got != want[i] {
			t.Fatalf("case %d: with colliding hashes got\n%s\nwant\n%s", i, got, want[i])
		}
	}
}

func randomLabels(rng *rand.Rand, n int) []int32 {
	labels := make([]int32, n)
	for k := range labels {
		labels[k] = int32(rng.IntN(3))
	}
	return labels
}

// checkScript checks that the unchanged lines pair up with lines that are
// the same, labels included.
func checkScript(t *testing.T, s *Script) {
	t.Helper()
	i, j := 0, 0
	for {
		for i < len(s.ca) && s.ca[i] {
			i++
		}
		for j < len(s.cb) && s.cb[j] {
			j++
		}
		if i == len(s.ca) || j == len(s.cb) {
			if i != len(s.ca) || j != len(s.cb) {
				t.Fatalf("%d unchanged lines in a, %d in b", i, j)
			}
			return
		}
		if !same(s.a, i, s.b, j) {
			t.Fatalf("line %d of a (%q, label %d) pairs with line %d of b (%q, label %d)", i, s.a.Line(i), s.a.labelOf(i), j, s.b.Line(j), s.b.labelOf(j))
		}
		i, j = i+1, j+1
	}
}

// TestLabels: lines with the same bytes but different labels never pair.
func TestLabels(t *testing.T) {
	a, b := Split([]byte("{\nname: x\n}\n")), Split([]byte("{\nname: x\n}\n"))
	if got := Diff(a, b, nil).Unified("a", "b"); got != "" {
		t.Errorf("same texts, no labels: got diff %q, want none", got)
	}
	a.SetLabels([]int32{0, 1, 0})
	b.SetLabels([]int32{0, 2, 0})
	want := "--- a\n+++ b\n@@ -1,3 +1,3 @@\n {\n-name: x\n+name: x\n }\n"
	if got := Diff(a, b, nil).Unified("a", "b"); got != want {
		t.Errorf("same bytes, other labels: got\n%s\nwant\n%s", got, want)
	}
	b.SetLabels([]int32{0, 1, 0})
	if got := Diff(a, b, nil).Unified("a", "b"); got != "" {
		t.Errorf("same labels: got diff %q, want none", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("SetLabels with too few labels did not panic")
		}
	}()
	a.SetLabels([]int32{1})
}

// TestAnchors: the lines of an anchor pair up, and nothing pairs across
// one, even where a shorter diff would.
func TestAnchors(t *testing.T) {
	a := Split([]byte("x\ny\nz\n"))
	b := Split([]byte("y\nz\nx\n"))
	if got, want := Diff(a, b, nil).Unified("a", "b"), "--- a\n+++ b\n@@ -1,3 +1,3 @@\n-x\n y\n z\n+x\n"; got != want {
		t.Errorf("no anchors: got\n%s\nwant\n%s", got, want)
	}
	// x pairs with x: y and z, before it in b and after it in a, cannot
	// pair.
	want := "--- a\n+++ b\n@@ -1,3 +1,3 @@\n+y\n+z\n x\n-y\n-z\n"
	if got := Diff(a, b, []Match{{A: 0, B: 2, N: 1}}).Unified("a", "b"); got != want {
		t.Errorf("anchor x: got\n%s\nwant\n%s", got, want)
	}
	// An empty anchor splits the texts: the first line of each against
	// each other, the rest against the rest.
	want = "--- a\n+++ b\n@@ -1,3 +1,3 @@\n-x\n-y\n+y\n z\n+x\n"
	if got := Diff(a, b, []Match{{A: 1, B: 1, N: 0}}).Unified("a", "b"); got != want {
		t.Errorf("empty anchor: got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range [][]Match{{{A: 2, B: 0, N: 2}}, {{A: 1, B: 1, N: 1}, {A: 0, B: 2, N: 1}}, {{A: 0, B: 0, N: -1}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("anchors %v: no panic", bad)
				}
			}()
			Diff(a, b, bad)
		}()
	}
}

func TestNoNewlineAtEnd(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"x\ny", "x\ny\n", "--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n"},
		{"x\ny\n", "x\ny", "--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n+y\n\\ No newline at end of file\n"},
		{"x\ny", "x\nz", "--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+z\n\\ No newline at end of file\n"},
		{"", "x", "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n"},
	}
	for _, tt := range tests {
		if got := Diff(Split([]byte(tt.a)), Split([]byte(tt.b)), nil).Unified("a", "b"); got != tt.want {
			t.Errorf("%q -> %q: got\n%s\nwant\n%s", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestHunkRange(t *testing.T) {
	tests := []struct {
		start, n int
		want     string
	}{
		{0, 0, "0,0"},
		{4, 0, "4,0"},
		{0, 1, "1"},
		{6, 1, "7"},
		{0, 7, "1,7"},
		{29, 12, "30,12"},
	}
	for _, tt := range tests {
		if got := hunkRange(tt.start, tt.n); got != tt.want {
			t.Errorf("hunkRange(%d, %d) = %q, want %q", tt.start, tt.n, got, tt.want)
		}
	}
}

// numbered returns lines "prefix0" to "prefix<n-1>", in reverse order if
// reverse is set.
func numbered(prefix string, n int, reverse bool) []byte {
	var b bytes.Buffer
	for k := range n {
		if reverse {
			k = n - 1 - k
		}
		fmt.Fprintf(&b, "%s%d\n", prefix, k)
	}
	return b.Bytes()
}

// TestBudget: when the budget runs out, the part still to search shows
// as replaced, the diff still applies, and the same texts give the same
// diff every time: the budget counts steps of the search, not time.
func TestBudget(t *testing.T) {
	a, b := numbered("line ", 3000, false), numbered("line ", 3000, true)
	full := Diff(Split(a), Split(b), nil)
	if full.exhausted {
		t.Fatalf("3,000 lines against their reverse: the budget ran out after %d steps", full.steps)
	}
	for _, budget := range []int{0, 1000, full.steps / 2} {
		s := diff(Split(a), Split(b), nil, budget)
		if !s.exhausted {
			t.Errorf("budget %d: did not run out, took %d steps", budget, s.steps)
		}
		got := s.Unified("a", "b")
		if udifftest.Apply(t, string(a), got) != string(b) {
			t.Fatalf("budget %d: the diff does not apply", budget)
		}
		if changedLines(got) <= changedLines(full.Unified("a", "b")) && budget > 0 {
			t.Errorf("budget %d: got as short a diff as with the whole budget", budget)
		}
		for range 3 {
			if again := diff(Split(a), Split(b), nil, budget).Unified("a", "b"); again != got {
				t.Fatalf("budget %d: two runs gave different diffs", budget)
			}
		}
	}
	if s := diff(Split(a), Split(b), nil, full.steps); s.exhausted || s.Unified("a", "b") != full.Unified("a", "b") {
		t.Errorf("a budget of exactly the steps needed: got another diff")
	}
}

// TestNoClock: the diff reads no clock, so that nothing but its input
// decides it, however busy the machine: neither this package nor any
// package it imports, directly or not, imports time.
func TestNoClock(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var walk func(path, from string)
	walk = func(path, from string) {
		if seen[path] || path == "C" || path == "unsafe" {
			return
		}
		seen[path] = true
		if path == "time" || path == "context" {
			t.Errorf("%s imports %s", from, path)
		}
		p, err := build.Import(path, "", 0)
		if err != nil {
			t.Fatalf("import %s (from %s): %v", path, from, err)
		}
		for _, imp := range p.Imports {
			walk(imp, path)
		}
	}
	for _, imp := range p.Imports {
		walk(imp, "udiff")
	}
	if len(seen) < 5 {
		t.Fatalf("found only %d packages: %v", len(seen), seen)
	}
}
