package udiff

import "math"

// A Match is a run of N lines, from line A of the old text and line B of
// the new one, that the caller knows to be the same and to pair up. An
// empty Match (N = 0) says where the texts line up: lines before it only
// pair with lines before it.
type Match struct{ A, B, N int }

// A Script is an edit script: for each line of the old text and of the
// new one, whether it is changed (deleted from the old text, inserted in
// the new one). Unchanged lines pair up in order.
type Script struct {
	a, b   *Text
	ca, cb []bool
	// steps is the work the search took, and exhausted reports whether
	// the budget ran out before it was done: for tests.
	steps     int
	exhausted bool
}

// The work budget, in steps of the search: one step is one diagonal of
// Myers' edit graph taken one edit further, or one pair of lines found
// equal along it. A shortest diff of n lines in all with d changed lines
// (after setting aside the lines only one side has) costs at most about
// n·d/2 steps, usually far fewer.
const (
	// baseBudget lets any two texts of a few thousand lines be diffed
	// exactly, however different they are.
	baseBudget = 1 << 24
	// perLineBudget lets larger texts be diffed exactly while the lines
	// that differ are a few dozen to a few thousand, by how they spread.
	// Two 100,000-actor registries (two million lines) get 50 million
	// steps, about a fifth of a second on the project's machine.
	perLineBudget = 16
)

// budget returns how many steps Diff spends, at most, searching for a
// shortest diff of two texts of lines lines in all. It depends on nothing
// but the size, so that the same texts always give the same diff.
func budget(lines int) int { return baseBudget + perLineBudget*lines }

// Diff computes the edit script from a to b. anchors, in increasing order
// in both texts, are runs of lines the caller knows pair up: only the
// stretches between them are searched. Within a stretch, the script is a
// shortest one unless the work budget (budget of both texts' lines) runs
// out, after which each part of a stretch still to be searched shows as
// replaced wholesale. Runs of changes are then placed as GNU diff places
// them, so that the hunks are those of diff -u wherever the shortest diff
// is one but for where its runs sit; where shortest diffs differ more
// (lines that repeat a lot), GNU diff may pick another. Diff panics if
// the anchors are out of order or out of range.
func Diff(a, b *Text, anchors []Match) *Script {
	return diff(a, b, anchors, budget(a.Len()+b.Len()))
}

func diff(a, b *Text, anchors []Match, steps int) *Script {
	s := &Script{a: a, b: b, ca: make([]bool, a.Len()), cb: make([]bool, b.Len())}
	d := &differ{s: s, left: steps}
	i, j := 0, 0
	for _, m := range anchors {
		if m.N < 0 || m.A < i || m.B < j || m.A+m.N > a.Len() || m.B+m.N > b.Len() {
			panic("udiff: Diff: anchors out of order or out of range")
		}
		d.stretch(i, m.A, j, m.B)
		i, j = m.A+m.N, m.B+m.N
	}
	d.stretch(i, a.Len(), j, b.Len())
	s.steps, s.exhausted = steps-d.left, d.exhausted
	s.shiftBoundaries()
	return s
}

// A differ searches the stretches of one diff, sharing the work budget.
type differ struct {
	s    *Script
	left int // steps of the budget left; may go below 0 by one round
	// exhausted reports whether the search gave up somewhere.
	exhausted bool

	// The stretch being searched, as GNU diff searches it: each line is
	// a number (its class: equal lines, equal numbers), and the lines the
	// other side lacks are set aside first.
	xv, yv []int32 // classes of the lines kept
	xi, yi []int   // line numbers in a and b of the lines kept
	fd, bd []int   // furthest x on each diagonal, forward and backward
}

// stretch marks the changed lines among lines [i0, i1) of a and [j0, j1)
// of b.
func (d *differ) stretch(i0, i1, j0, j1 int) {
	a, b := d.s.a, d.s.b
	for i0 < i1 && j0 < j1 && same(a, i0, b, j0) {
		i0, j0 = i0+1, j0+1
	}
	for i0 < i1 && j0 < j1 && same(a, i1-1, b, j1-1) {
		i1, j1 = i1-1, j1-1
	}
	if i0 == i1 || j0 == j1 {
		mark(d.s.ca[i0:i1])
		mark(d.s.cb[j0:j1])
		return
	}

	// Number the lines by class, and set aside the lines the other side
	// does not have: they are changed in every diff. GNU diff does the same
	// (discard_confusing_lines); it makes a file that differs on every
	// line, reindented say, cheap to diff. Lines whose label the other
	// side lacks need no class.
	xk, yk := candidates(a, i0, i1, b, j0, j1, d.s.ca), candidates(b, j0, j1, a, i0, i1, d.s.cb)
	cl := newClassifier(len(xk) + len(yk))
	xc, yc := cl.classify(a, xk), cl.classify(b, yk)
	inA, inB := make([]bool, cl.n()), make([]bool, cl.n())
	for _, c := range xc {
		inA[c] = true
	}
	for _, c := range yc {
		inB[c] = true
	}
	d.xv, d.xi = keep(d.xv[:0], d.xi[:0], xc, xk, inB, d.s.ca)
	d.yv, d.yi = keep(d.yv[:0], d.yi[:0], yc, yk, inA, d.s.cb)

	if n := len(d.xv) + len(d.yv) + 3; cap(d.fd) < n {
		d.fd, d.bd = make([]int, n), make([]int, n)
	}
	d.compareseq(0, len(d.xv), 0, len(d.yv))
}

// candidates returns the lines among [k0, k1) of t whose label occurs
// among lines [l0, l1) of u, and marks the others changed.
func candidates(t *Text, k0, k1 int, u *Text, l0, l1 int, changed []bool) []int {
	idx := make([]int, 0, k1-k0)
	if t.label == nil && u.label == nil {
		for k := k0; k < k1; k++ {
			idx = append(idx, k)
		}
		return idx
	}
	// Labels come in runs (a record's lines): look each run up once.
	has := make(map[int32]bool)
	for l := l0; l < l1; l++ {
		if l == l0 || u.labelOf(l) != u.labelOf(l-1) {
			has[u.labelOf(l)] = true
		}
	}
	ok := false
	for k := k0; k < k1; k++ {
		if k == k0 || t.labelOf(k) != t.labelOf(k-1) {
			ok = has[t.labelOf(k)]
		}
		if ok {
			idx = append(idx, k)
		} else {
			changed[k] = true
		}
	}
	return idx
}

// keep appends to v and idx the class and line number of each line
// (lines[k], of class cs[k]) that the other side has, and marks the
// others changed.
func keep(v []int32, idx []int, cs []int32, lines []int, other []bool, changed []bool) ([]int32, []int) {
	for k, c := range cs {
		if other[c] {
			v, idx = append(v, c), append(idx, lines[k])
		} else {
			changed[lines[k]] = true
		}
	}
	return v, idx
}

func mark(changed []bool) {
	for k := range changed {
		changed[k] = true
	}
}

// compareseq marks the changed lines among the kept lines [xoff, xlim)
// and [yoff, ylim): GNU diff's compareseq (diffseq.h), splitting the
// problem at the middle of a shortest edit path until what is left is
// only deletions or only insertions. A part that the budget cannot pay
// for is replaced wholesale.
func (d *differ) compareseq(xoff, xlim, yoff, ylim int) {
	xv, yv := d.xv, d.yv
	x0, x1 := xoff, xlim
	for xoff < xlim && yoff < ylim && xv[xoff] == yv[yoff] {
		xoff, yoff = xoff+1, yoff+1
	}
	for xoff < xlim && yoff < ylim && xv[xlim-1] == yv[ylim-1] {
		xlim, ylim = xlim-1, ylim-1
	}
	d.left -= (xoff - x0) + (x1 - xlim)
	if xoff < xlim && yoff < ylim {
		if xmid, ymid, ok := d.diag(xoff, xlim, yoff, ylim); ok {
			d.compareseq(xoff, xmid, yoff, ymid)
			d.compareseq(xmid, xlim, ymid, ylim)
			return
		}
	}
	for x := xoff; x < xlim; x++ {
		d.s.ca[d.xi[x]] = true
	}
	for y := yoff; y < ylim; y++ {
		d.s.cb[d.yi[y]] = true
	}
}

// diag finds the midpoint of a shortest edit path from (xoff, yoff) to
// (xlim, ylim), searching from both corners at once: GNU diff's diag
// (diffseq.h) without its heuristics, which give up on a shortest path
// only past a cost that GNU diff sets from the size of the files. Here
// the budget plays that part: diag reports false, having found nothing,
// when it runs out.
func (d *differ) diag(xoff, xlim, yoff, ylim int) (xmid, ymid int, ok bool) {
	xv, yv := d.xv, d.yv
	// Diagonal k = x - y is at fd[k+o], bd[k+o]; k runs from -len(yv)-1
	// to len(xv)+1.
	o := len(yv) + 1
	fd, bd := d.fd, d.bd
	dmin, dmax := xoff-ylim, xlim-yoff // the diagonals in the box
	fmid, bmid := xoff-yoff, xlim-ylim // where each search starts
	fmin, fmax, bmin, bmax := fmid, fmid, bmid, bmid
	odd := (fmid-bmid)&1 != 0
	fd[fmid+o] = xoff
	bd[bmid+o] = xlim
	for d.left > 0 {
		steps := 0
		// One more edit on each diagonal, top down.
		if fmin > dmin {
			fmin--
			fd[fmin-1+o] = -1
		} else {
			fmin++
		}
		if fmax < dmax {
			fmax++
			fd[fmax+1+o] = -1
		} else {
			fmax--
		}
		for k := fmax; k >= fmin; k -= 2 {
			tlo, thi := fd[k-1+o], fd[k+1+o]
			x0 := tlo + 1
			if tlo < thi {
				x0 = thi
			}
			x, y := x0, x0-k
			for x < xlim && y < ylim && xv[x] == yv[y] {
				x, y = x+1, y+1
			}
			steps += 1 + x - x0
			fd[k+o] = x
			if odd && bmin <= k && k <= bmax && x >= bd[k+o] {
				d.left -= steps
				return x, y, true
			}
		}
		// And bottom up.
		if bmin > dmin {
			bmin--
			bd[bmin-1+o] = math.MaxInt
		} else {
			bmin++
		}
		if bmax < dmax {
			bmax++
			bd[bmax+1+o] = math.MaxInt
		} else {
			bmax--
		}
		for k := bmax; k >= bmin; k -= 2 {
			tlo, thi := bd[k-1+o], bd[k+1+o]
			x0 := thi - 1
			if tlo < thi {
				x0 = tlo
			}
			x, y := x0, x0-k
			for xoff < x && yoff < y && xv[x-1] == yv[y-1] {
				x, y = x-1, y-1
			}
			steps += 1 + x0 - x
			bd[k+o] = x
			if !odd && fmin <= k && k <= fmax && x <= fd[k+o] {
				d.left -= steps
				return x, y, true
			}
		}
		d.left -= steps
	}
	d.exhausted = true
	return 0, 0, false
}
