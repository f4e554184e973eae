package udiff

import (
	"bytes"
	"strconv"
)

// contextLines is the number of unchanged lines shown around each change,
// as diff -u shows them.
const contextLines = 3

// A change is one run of changed lines: del lines of a from line a, ins
// lines of b from line b (0-based).
type change struct{ a, del, b, ins int }

func (s *Script) changes() []change {
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

// Unified renders the script as a unified diff with the given header
// names and three lines of context, "" when the texts are the same.
func (s *Script) Unified(nameA, nameB string) string {
	cs := s.changes()
	if len(cs) == 0 {
		return ""
	}
	var buf bytes.Buffer
	buf.WriteString("--- " + nameA + "\n+++ " + nameB + "\n")
	na, nb := s.a.Len(), s.b.Len()
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
				writeLine(&buf, ' ', s.a, i)
			}
			for ; i < cs[c].a+cs[c].del; i++ {
				writeLine(&buf, '-', s.a, i)
			}
			for ; j < cs[c].b+cs[c].ins; j++ {
				writeLine(&buf, '+', s.b, j)
			}
		}
		for ; i < aEnd; i, j = i+1, j+1 {
			writeLine(&buf, ' ', s.a, i)
		}
	}
	return buf.String()
}

func writeLine(buf *bytes.Buffer, prefix byte, t *Text, k int) {
	buf.WriteByte(prefix)
	line := t.Line(k)
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
