package drift

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// contextLines is the number of unchanged lines shown around each change, as
// diff -u shows them.
const contextLines = 3

// exactLimit is the largest stretch of lines (both sides together) that is
// diffed exactly. diffmatchpatch's bisection costs O(N·D); past this size a
// stretch is diffed against a deadline, which may give a longer but still
// correct diff.
const exactLimit = 4000

// diffBudget bounds the time spent on stretches past exactLimit, for the
// whole diff. When it runs out, a stretch is shown as replaced wholesale.
const diffBudget = 5 * time.Second

// maxLineKinds is how many distinct lines diffmatchpatch's line mode can
// tell apart: it encodes each distinct line as one rune.
const maxLineKinds = 1_000_000

// A text is a file's content split into lines. Line k is
// data[off[k]:off[k+1]] and keeps its "\n"; the last line may lack one.
type text struct {
	data []byte
	off  []int
	// owner, when the text is a canonical snapshot, gives for each line
	// the index in blocks of the actor block it belongs to, or -1.
	owner  []int32
	blocks []block
}

// setBlocks records which actor block each line belongs to.
func (t *text) setBlocks(blocks []block) {
	t.blocks = blocks
	t.owner = make([]int32, t.lines())
	for k := range t.owner {
		t.owner[k] = -1
	}
	for b, bl := range blocks {
		for k := bl.start; k < bl.end; k++ {
			t.owner[k] = int32(b)
		}
	}
}

// isBrace reports whether a line is an actor block's opening or closing
// brace: lines that carry no meaning, shared by all actors.
func isBrace(line []byte) bool {
	switch string(line) {
	case "    {\n", "    },\n", "    }\n":
		return true
	}
	return false
}

// tag returns the actor that line k belongs to, "" for lines outside
// actor blocks and for braces.
func (t text) tag(k int) string {
	if t.owner == nil || t.owner[k] < 0 || isBrace(t.line(k)) {
		return ""
	}
	return t.blocks[t.owner[k]].name
}

// same reports whether line x of t and line y of u are the same line for
// the diff: the same text, of the same actor.
func same(t text, x int, u text, y int) bool {
	return bytes.Equal(t.line(x), u.line(y)) && t.tag(x) == u.tag(y)
}

func splitLines(data []byte) text {
	n := bytes.Count(data, []byte{'\n'})
	off := make([]int, 0, n+2)
	for i := 0; i < len(data); {
		off = append(off, i)
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			i = len(data)
		} else {
			i += j + 1
		}
	}
	return text{data: data, off: append(off, len(data))}
}

func (t text) lines() int           { return len(t.off) - 1 }
func (t text) line(k int) []byte    { return t.data[t.off[k]:t.off[k+1]:t.off[k+1]] }
func (t text) span(i, j int) []byte { return t.data[t.off[i]:t.off[j]:t.off[j]] }

// A block is a run of lines [start, end) standing for one actor, or for
// nothing (an unanchored stretch).
type block struct {
	name       string
	start, end int
}

// actorBlocks splits a snapshot's canonical form into its actors' blocks,
// in file order. Each block runs from the actor's "    {" line to the line
// before the next one (its "    }," line). It reports false when t is not
// laid out as the canonical form of the named actors.
func actorBlocks(t text, names []string) ([]block, bool) {
	const open = "    {\n"
	blocks := make([]block, 0, len(names))
	for k := 0; k < t.lines(); k++ {
		if t.off[k+1]-t.off[k] != len(open) || string(t.line(k)) != open {
			continue
		}
		if len(blocks) == len(names) {
			return nil, false
		}
		if n := len(blocks); n > 0 {
			blocks[n-1].end = k
		}
		blocks = append(blocks, block{name: names[len(blocks)], start: k})
	}
	if len(blocks) != len(names) {
		return nil, false
	}
	if n := len(blocks); n > 0 {
		// The last block ends at the "  ]" line closing the actors array.
		end := t.lines() - 2
		if end <= blocks[n-1].start || string(t.line(end)) != "  ]\n" {
			return nil, false
		}
		blocks[n-1].end = end
	}
	return blocks, true
}

// An edit script marks, for each line of a and of b, whether it is changed
// (deleted from a, inserted in b). Unchanged lines pair up in order.
type script struct {
	a, b   text
	ca, cb []bool
}

// diffLines computes an edit script from a to b. When both are canonical
// snapshot forms and blocksA and blocksB give their actor blocks (sorted
// by name), actors whose blocks are byte-identical on both sides anchor
// the diff and only the stretches between anchors are diffed: that keeps
// a 100,000-actor registry with a few changes fast. Within a stretch, an
// actor's lines only ever pair with the same actor's lines (see tagged),
// so the diff tells the same story as the change list: a removed actor
// is a removed block, not lines shared out among its neighbours. Without
// blocks the whole text is one stretch.
func diffLines(a, b text, blocksA, blocksB []block) *script {
	s := &script{a: a, b: b, ca: make([]bool, a.lines()), cb: make([]bool, b.lines())}
	d := &differ{s: s, deadline: time.Now().Add(diffBudget)}
	i, j := 0, 0   // start of the current stretch in a and b
	xs, ys := 0, 0 // first block of the current stretch in blocksA and blocksB
	for x, y := 0, 0; x < len(blocksA) && y < len(blocksB); {
		ba, bb := blocksA[x], blocksB[y]
		switch {
		case ba.name < bb.name:
			x++
		case ba.name > bb.name:
			y++
		default:
			if bytes.Equal(a.span(ba.start, ba.end), b.span(bb.start, bb.end)) {
				d.stretch(i, ba.start, j, bb.start, blocksA[xs:x], blocksB[ys:y])
				i, j = ba.end, bb.end
				xs, ys = x+1, y+1
			}
			x++
			y++
		}
	}
	d.stretch(i, a.lines(), j, b.lines(), blocksA[xs:], blocksB[ys:])
	s.shiftBoundaries()
	return s
}

type differ struct {
	s        *script
	deadline time.Time
}

// stretch diffs lines [i0, i1) of a against [j0, j1) of b with
// diffmatchpatch in line mode, marking changed lines. blocksA and blocksB
// are the actor blocks within the stretch.
func (d *differ) stretch(i0, i1, j0, j1 int, blocksA, blocksB []block) {
	s := d.s
	if i0 == i1 && j0 == j1 {
		return
	}
	replace := func() {
		for i := i0; i < i1; i++ {
			s.ca[i] = true
		}
		for j := j0; j < j1; j++ {
			s.cb[j] = true
		}
	}
	if i0 == i1 || j0 == j1 {
		replace()
		return
	}
	if bytes.Equal(s.a.span(i0, i1), s.b.span(j0, j1)) {
		return
	}
	dmp := diffmatchpatch.New()
	// Line mode: each distinct line becomes one rune, and the diff runs
	// on runes, never on characters (checklines false).
	dmp.DiffTimeout = 0 // exact: diffmatchpatch's half-match shortcut, on only with a timeout, can give non-minimal diffs
	if n := (i1 - i0) + (j1 - j0); n > exactLimit {
		if n > maxLineKinds && distinctLines(s.a, i0, i1, s.b, j0, j1) > maxLineKinds {
			replace()
			return
		}
		left := time.Until(d.deadline)
		if left <= 0 {
			replace()
			return
		}
		dmp.DiffTimeout = left
	}
	ra, rb, _ := dmp.DiffLinesToChars(tagged(s.a, i0, i1, blocksA), tagged(s.b, j0, j1, blocksB))
	if n := (i1 - i0) + (j1 - j0); n <= exactLimit {
		markDiff(s.ca[i0:i1], s.cb[j0:j1], dmp.DiffMain(ra, rb, false))
		return
	}
	// A large stretch: first set aside the lines that the other side does
	// not have at all, as GNU diff does (discard_confusing_lines). They
	// are changed in every diff, and without them a file that differs on
	// every line, reindented say, costs nothing to diff.
	xa, xb := []rune(ra), []rune(rb)
	inA, inB := make(map[rune]bool, len(xa)), make(map[rune]bool, len(xb))
	for _, r := range xa {
		inA[r] = true
	}
	for _, r := range xb {
		inB[r] = true
	}
	keptA, keptB := keep(xa, inB, s.ca[i0:i1]), keep(xb, inA, s.cb[j0:j1])
	ka, kb := make([]rune, len(keptA)), make([]rune, len(keptB))
	for k, i := range keptA {
		ka[k] = xa[i]
	}
	for k, j := range keptB {
		kb[k] = xb[j]
	}
	ca, cb := make([]bool, len(ka)), make([]bool, len(kb))
	markDiff(ca, cb, dmp.DiffMainRunes(ka, kb, false))
	for k, i := range keptA {
		s.ca[i0+i] = ca[k]
	}
	for k, j := range keptB {
		s.cb[j0+j] = cb[k]
	}
}

// keep marks as changed the lines (runes) of x that other lacks, and
// returns the indices of the others.
func keep(x []rune, other map[rune]bool, changed []bool) []int {
	var kept []int
	for i, r := range x {
		if other[r] {
			kept = append(kept, i)
		} else {
			changed[i] = true
		}
	}
	return kept
}

// markDiff marks the changed lines of a diff between two rune-per-line
// texts.
func markDiff(ca, cb []bool, diffs []diffmatchpatch.Diff) {
	i, j := 0, 0
	for _, df := range diffs {
		n := runeCount(df.Text) // one rune per line
		switch df.Type {
		case diffmatchpatch.DiffEqual:
			i += n
			j += n
		case diffmatchpatch.DiffDelete:
			for ; n > 0; n-- {
				ca[i] = true
				i++
			}
		case diffmatchpatch.DiffInsert:
			for ; n > 0; n-- {
				cb[j] = true
				j++
			}
		}
	}
}

// tagged returns lines [i0, i1) of t for diffing, each line of an actor
// block but its braces prefixed with the actor's name, so that only the
// same actor's lines compare equal. The braces stay shared: they carry no
// meaning, and sharing them keeps the diff as short as diff -u's.
func tagged(t text, i0, i1 int, blocks []block) string {
	if len(blocks) == 0 {
		return string(t.span(i0, i1))
	}
	var b strings.Builder
	b.Grow(t.off[i1] - t.off[i0] + (i1-i0)*8)
	k := i0
	for _, bl := range blocks {
		b.Write(t.span(k, bl.start))
		for k = bl.start; k < bl.end; k++ {
			line := t.line(k)
			if !isBrace(line) {
				b.WriteString(bl.name)
				b.WriteByte(0)
			}
			b.Write(line)
		}
	}
	b.Write(t.span(k, i1))
	return b.String()
}

func runeCount(s string) int { return len([]rune(s)) }

func distinctLines(a text, i0, i1 int, b text, j0, j1 int) int {
	seen := make(map[string]struct{})
	for i := i0; i < i1; i++ {
		seen[string(a.line(i))] = struct{}{}
	}
	for j := j0; j < j1; j++ {
		seen[string(b.line(j))] = struct{}{}
	}
	return len(seen)
}

// shiftBoundaries slides each run of changed lines over identical
// neighbouring lines the way GNU diff does, so that two minimal diffs that
// differ only in where an ambiguous run sits come out the same, and the
// hunks match diff -u's. GNU diff first trims the identical prefix and
// suffix but for context ("horizon") lines (io.c, find_identical_ends),
// which bounds how far a run may slide; then it merges runs and slides
// each as far down as that window allows, or back up to line up with a
// run in the other file (analyze.c, shift_boundaries).
func (s *script) shiftBoundaries() {
	lo, hiA, hiB := horizon(s.a, s.b)
	slideUp(s.a, s.ca, lo)
	slideUp(s.b, s.cb, lo)
	shift(s.a, s.ca, s.cb, lo, hiA, hiB)
	shift(s.b, s.cb, s.ca, lo, hiB, hiA)
}

// horizon returns the window GNU diff analyzes: from contextLines lines
// before the first difference to contextLines lines into the identical
// suffix, which may reach back to the window's start. The identical
// prefix and suffix are found on bytes, as GNU diff does, which is also
// fast on large files.
func horizon(a, b text) (lo, hiA, hiB int) {
	na, nb := a.lines(), b.lines()
	p := commonPrefix(a.data, b.data)
	// k: lines wholly inside the identical prefix. Within it the actor
	// tags agree too: a block's name line comes before its other lines.
	k := sort.Search(min(na, nb), func(m int) bool { return a.off[m+1] > p })
	lo = max(0, k-contextLines)

	n := commonSuffix(a.data, b.data, min(len(a.data), len(b.data))-a.off[lo])
	// suffix: lines wholly inside the identical suffix in both files.
	m := sort.SearchInts(a.off[:na], len(a.data)-n)
	suffix := na - m
	if suffix > 0 && a.off[m] == len(a.data)-n {
		if q := len(b.data) - n; q > 0 && b.data[q-1] != '\n' {
			suffix-- // starts mid-line in b
		}
	}
	// The block the suffix starts inside may be another actor in each
	// file, its name line being above the suffix: those lines differ.
	for s := suffix; s > 0; s-- {
		x, y := na-s, nb-s
		if string(a.line(x)) == "    {\n" {
			break
		}
		if a.tag(x) != b.tag(y) {
			suffix = s - 1
		}
	}
	return lo, min(na, na-suffix+contextLines), min(nb, nb-suffix+contextLines)
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	const chunk = 4096
	n := min(len(a), len(b))
	i := 0
	for i+chunk <= n && bytes.Equal(a[i:i+chunk], b[i:i+chunk]) {
		i += chunk
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns the length of the longest common suffix of a and b,
// at most limit.
func commonSuffix(a, b []byte, limit int) int {
	const chunk = 4096
	n := 0
	for n+chunk <= limit && bytes.Equal(a[len(a)-n-chunk:len(a)-n], b[len(b)-n-chunk:len(b)-n]) {
		n += chunk
	}
	for n < limit && a[len(a)-n-1] == b[len(b)-n-1] {
		n++
	}
	return n
}

// slideUp moves each run of changes up as far as identical lines allow,
// to where GNU diff's analysis, which sees the identical suffix as late
// as it can, would have put it.
func slideUp(t text, changed []bool, lo int) {
	for i := lo; i < len(changed); {
		if !changed[i] {
			i++
			continue
		}
		start := i
		for i < len(changed) && changed[i] {
			i++
		}
		for start > lo && same(t, start-1, t, i-1) {
			start--
			changed[start] = true
			i--
			changed[i] = false
			for start > lo && changed[start-1] {
				start--
			}
		}
		for i < len(changed) && changed[i] {
			i++
		}
	}
}

// shift is GNU diff's shift_boundaries for one file, over the window
// [lo, hi) of it and [lo, hiOther) of the other file; outside the window
// both read as unchanged, as GNU diff's sentinels do.
func shift(t text, changed, other []bool, lo, hi, hiOther int) {
	c := func(k int) bool { return k >= lo && k < hi && changed[k] }
	o := func(k int) bool { return k >= lo && k < hiOther && other[k] }
	eq := func(x, y int) bool { return same(t, x, t, y) }

	i, j := lo, lo
	for {
		for i < hi && !c(i) {
			for o(j) {
				j++
			}
			j++
			i++
		}
		if i >= hi {
			break
		}
		start := i
		for i++; c(i); i++ {
		}
		for o(j) {
			j++
		}
		var corresponding int
		for {
			runlength := i - start
			// Move the run up while the line before it matches its last
			// line, merging with runs above.
			for start > lo && eq(start-1, i-1) {
				start--
				changed[start] = true
				i--
				changed[i] = false
				for c(start - 1) {
					start--
				}
				for j--; o(j); j-- {
				}
			}
			// corresponding is the end of the run where it last lined
			// up with a run in the other file; hi means nowhere.
			corresponding = hi
			if o(j - 1) {
				corresponding = i
			}
			// Move the run down while its first line matches the line
			// after it, merging with runs below.
			for i < hi && eq(start, i) {
				changed[start] = false
				start++
				changed[i] = true
				i++
				for c(i) {
					i++
				}
				for j++; o(j); j++ {
					corresponding = i
				}
			}
			if runlength == i-start {
				break
			}
		}
		for corresponding < i {
			start--
			changed[start] = true
			i--
			changed[i] = false
			for j--; o(j); j-- {
			}
		}
	}
}

// A change is one run of changed lines: del lines of a from line a, ins
// lines of b from line b (0-based).
type change struct{ a, del, b, ins int }

func (s *script) changes() []change {
	var cs []change
	na, nb := len(s.ca), len(s.cb)
	for i, j := 0, 0; i < na || j < nb; {
		if i < na && j < nb && !s.ca[i] && !s.cb[j] {
			i++
			j++
			continue
		}
		c := change{a: i, b: j}
		for i < na && s.ca[i] {
			i++
		}
		for j < nb && s.cb[j] {
			j++
		}
		c.del, c.ins = i-c.a, j-c.b
		cs = append(cs, c)
	}
	return cs
}

// unified renders the script as a unified diff with the given header
// names, "" when the texts are equal.
func (s *script) unified(nameA, nameB string) string {
	cs := s.changes()
	if len(cs) == 0 {
		return ""
	}
	var buf bytes.Buffer
	buf.WriteString("--- " + nameA + "\n+++ " + nameB + "\n")
	na, nb := s.a.lines(), s.b.lines()
	for k := 0; k < len(cs); {
		// Group changes whose gaps are short enough to share context.
		first, last := k, k
		for last+1 < len(cs) && cs[last+1].a-(cs[last].a+cs[last].del) < 2*contextLines+1 {
			last++
		}
		k = last + 1
		lead := min(contextLines, cs[first].a)
		aStart, bStart := cs[first].a-lead, cs[first].b-lead
		aEnd := min(na, cs[last].a+cs[last].del+contextLines)
		bEnd := min(nb, cs[last].b+cs[last].ins+contextLines)
		buf.WriteString("@@ -" + hunkRange(aStart, aEnd-aStart) + " +" + hunkRange(bStart, bEnd-bStart) + " @@\n")
		i, j := aStart, bStart
		for c := first; c <= last; c++ {
			for ; i < cs[c].a; i, j = i+1, j+1 {
				s.writeLine(&buf, ' ', s.a, i)
			}
			for ; i < cs[c].a+cs[c].del; i++ {
				s.writeLine(&buf, '-', s.a, i)
			}
			for ; j < cs[c].b+cs[c].ins; j++ {
				s.writeLine(&buf, '+', s.b, j)
			}
		}
		for ; i < aEnd; i, j = i+1, j+1 {
			s.writeLine(&buf, ' ', s.a, i)
		}
	}
	return buf.String()
}

func (s *script) writeLine(buf *bytes.Buffer, prefix byte, t text, k int) {
	buf.WriteByte(prefix)
	line := t.line(k)
	buf.Write(line)
	if !bytes.HasSuffix(line, []byte{'\n'}) {
		buf.WriteString("\n\\ No newline at end of file\n")
	}
}

// hunkRange formats a hunk's line range the way diff -u does: "l,n", just
// "l" for one line, and for no lines the line before, with ",0".
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return strconv.Itoa(start) + ",0"
	case 1:
		return strconv.Itoa(start + 1)
	}
	return strconv.Itoa(start+1) + "," + strconv.Itoa(n)
}
