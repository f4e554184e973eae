package udiff

import (
	"bytes"
	"sort"
)

// shiftBoundaries slides each run of changed lines over identical
// neighbouring lines the way GNU diff does, so that two shortest diffs
// that differ only in where an ambiguous run sits come out the same, and
// the hunks match diff -u's. GNU diff first trims the identical prefix
// and suffix but for context ("horizon") lines (io.c, find_identical_ends),
// which bounds how far a run may slide; then it merges runs and slides
// each as far down as that window allows, or back up to line up with a
// run in the other file (analyze.c, shift_boundaries).
func (s *Script) shiftBoundaries() {
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
// fast on large files, then cut where the labels differ.
func horizon(a, b *Text) (lo, hiA, hiB int) {
	na, nb := a.Len(), b.Len()
	p := commonPrefix(a.data, b.data)
	// k: lines wholly inside the identical prefix.
	k := sort.Search(min(na, nb), func(m int) bool { return a.off[m+1] > p })
	for x := 0; x < k; x++ {
		if a.labelOf(x) != b.labelOf(x) {
			k = x
			break
		}
	}
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
	for s := 1; s <= suffix; s++ {
		if a.labelOf(na-s) != b.labelOf(nb-s) {
			suffix = s - 1
			break
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
func slideUp(t *Text, changed []bool, lo int) {
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
func shift(t *Text, changed, other []bool, lo, hi, hiOther int) {
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
