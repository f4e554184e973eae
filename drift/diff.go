package drift

import (
	"bytes"

	"github.com/coulomb/flex-auth/drift/udiff"
	"github.com/coulomb/flex-auth/registry"
)

// isBrace reports whether a line is an actor block's opening or closing
// brace: lines that carry no meaning, shared by all actors.
func isBrace(line []byte) bool {
	switch string(line) {
	case "    {\n", "    },\n", "    }\n":
		return true
	}
	return false
}

// A block is the run of lines [start, end) standing for one actor.
type block struct {
	name       string
	start, end int
}

// actorBlocks splits a snapshot's canonical form into its actors' blocks,
// in file order. Each block runs from the actor's "    {" line to the line
// before the next one (its "    }," line). It reports false when t is not
// laid out as the canonical form of the named actors.
func actorBlocks(t *udiff.Text, names []string) ([]block, bool) {
	const open = "    {\n"
	blocks := make([]block, 0, len(names))
	for k := 0; k < t.Len(); k++ {
		if string(t.Line(k)) != open {
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
		end := t.Len() - 2
		if end <= blocks[n-1].start || string(t.Line(end)) != "  ]\n" {
			return nil, false
		}
		blocks[n-1].end = end
	}
	return blocks, true
}

// unifiedDiff returns the unified diff from ACTUAL's text to wantText,
// the canonical form of want, EXPECTED's registry, headed with the sides'
// sources.
//
// When ACTUAL's text is canonical too, both are laid out actor by actor,
// sorted by name. Each line of an actor's block but its braces is then
// labelled with the actor, so that it only pairs with the same actor's
// lines and the diff tells the same story as the change list: a removed
// actor is a removed block, not lines shared out among its neighbours.
// The braces stay shared: they carry no meaning, and sharing them keeps
// the diff as short as diff -u's. Actors whose blocks are the same on both
// sides anchor the diff, and only the stretches between them are searched:
// that keeps a 100,000-actor registry with a few changes fast.
func unifiedDiff(actual *Side, want *registry.Snapshot, wantText []byte, wantSource string) string {
	ta, tb := udiff.Split(actual.Text), udiff.Split(wantText)
	var anchors []udiff.Match
	if actual.Canonical {
		blocksA, okA := actorBlocks(ta, actorNames(actual.Snapshot))
		blocksB, okB := actorBlocks(tb, actorNames(want))
		if okA && okB {
			anchors = labelActors(ta, blocksA, tb, blocksB)
		}
	}
	return udiff.Diff(ta, tb, anchors).Unified(actual.Source, wantSource)
}

// labelActors labels the lines of both texts' actor blocks, one label per
// actor name, and returns the blocks that are the same on both sides as
// anchors. Both block lists are sorted by name.
func labelActors(ta *udiff.Text, blocksA []block, tb *udiff.Text, blocksB []block) []udiff.Match {
	la, lb := make([]int32, ta.Len()), make([]int32, tb.Len())
	anchors := make([]udiff.Match, 0, min(len(blocksA), len(blocksB)))
	label := int32(0)
	setLabel := func(t *udiff.Text, labels []int32, bl block, l int32) {
		for k := bl.start; k < bl.end; k++ {
			if !isBrace(t.Line(k)) {
				labels[k] = l
			}
		}
	}
	for x, y := 0, 0; x < len(blocksA) || y < len(blocksB); {
		label++
		switch {
		case y == len(blocksB) || x < len(blocksA) && blocksA[x].name < blocksB[y].name:
			setLabel(ta, la, blocksA[x], label)
			x++
		case x == len(blocksA) || blocksA[x].name > blocksB[y].name:
			setLabel(tb, lb, blocksB[y], label)
			y++
		default:
			ba, bb := blocksA[x], blocksB[y]
			setLabel(ta, la, ba, label)
			setLabel(tb, lb, bb, label)
			n := 0 // the blocks start together
			if bytes.Equal(ta.Span(ba.start, ba.end), tb.Span(bb.start, bb.end)) {
				n = ba.end - ba.start // and pair up whole
			}
			anchors = append(anchors, udiff.Match{A: ba.start, B: bb.start, N: n})
			x++
			y++
		}
	}
	ta.SetLabels(la)
	tb.SetLabels(lb)
	return anchors
}
