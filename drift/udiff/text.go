// Package udiff computes the difference between two texts line by line and
// writes it as a unified diff with the hunks GNU diff -u writes.
//
// Its output is a pure function of its input. The search for a shortest
// diff (Myers' algorithm, as GNU diff runs it) is bounded by an amount of
// work that depends only on the size of the texts, never by a clock: past
// that bound, the lines still unsearched show as replaced wholesale, the
// same way on every machine however busy.
//
// Two things go beyond diff -u. A caller may label lines: a line then only
// matches a line with the same bytes and the same label, which keeps, say,
// one record's lines from pairing with another's. And a caller may name
// runs of lines it knows pair up (anchors): only the stretches between
// them are searched, which keeps a large file with a few changes fast.
package udiff

import (
	"bytes"
	"strconv"
)

// A Text is a file's content split into lines. Line k keeps its "\n"; the
// last line may lack one.
type Text struct {
	data []byte
	off  []int // line k is data[off[k]:off[k+1]]
	// label, if not nil, holds each line's label; lines with different
	// labels never match.
	label []int32
}

// Split splits data into lines. The Text refers to data, which must not
// change while the Text is in use.
func Split(data []byte) *Text {
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
	return &Text{data: data, off: append(off, len(data))}
}

// Len returns the number of lines.
func (t *Text) Len() int { return len(t.off) - 1 }

// Line returns line k, with its "\n" if it has one.
func (t *Text) Line(k int) []byte { return t.data[t.off[k]:t.off[k+1]:t.off[k+1]] }

// Span returns lines [i, j) as one slice.
func (t *Text) Span(i, j int) []byte { return t.data[t.off[i]:t.off[j]:t.off[j]] }

// SetLabels gives line k the label labels[k]. A line only matches a line
// of the other text with the same bytes and the same label; unlabelled
// lines have label 0. Labels are compared as numbers: the caller gives
// the lines that may pair up across the two texts the same label. It
// panics unless labels has one entry per line or is nil, which removes
// the labels.
func (t *Text) SetLabels(labels []int32) {
	if labels != nil && len(labels) != t.Len() {
		panic("udiff: SetLabels: got a label for each of " + strconv.Itoa(len(labels)) + " lines, the text has " + strconv.Itoa(t.Len()))
	}
	t.label = labels
}

// labelOf returns line k's label.
func (t *Text) labelOf(k int) int32 {
	if t.label == nil {
		return 0
	}
	return t.label[k]
}

// same reports whether line x of t and line y of u are the same line for
// the diff: the same bytes and the same label.
func same(t *Text, x int, u *Text, y int) bool {
	return t.labelOf(x) == u.labelOf(y) && bytes.Equal(t.Line(x), u.Line(y))
}
