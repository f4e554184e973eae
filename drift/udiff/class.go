package udiff

import (
	"encoding/binary"
	"hash/maphash"
)

// A classifier numbers lines by class: the same line (bytes and label)
// gets the same number, in either text, and numbers are given in the
// order lines are first seen. Lines are found by a hash of their bytes and
// label, and compared with the first line of the class to be sure; the
// hash only makes the search fast and never decides, so the numbers do
// not depend on the hash's random seed.
type classifier struct {
	seed  maphash.Seed
	byKey map[uint64]int32
	first []line // first line of each class
	// other holds the classes of lines whose hash is another class's.
	other map[string]int32
	key   []byte
}

type line struct {
	t *Text
	k int
}

// hashLine hashes a line and its label; a variable, so that a test can
// make every line collide.
var hashLine = func(seed maphash.Seed, label uint32, line []byte) uint64 {
	return maphash.Bytes(seed, line) ^ uint64(label)*0x9e3779b97f4a7c15
}

func newClassifier(lines int) *classifier {
	return &classifier{seed: maphash.MakeSeed(), byKey: make(map[uint64]int32, lines)}
}

// n returns the number of classes so far.
func (c *classifier) n() int { return len(c.first) }

// classify returns the classes of lines ks of t.
func (c *classifier) classify(t *Text, ks []int) []int32 {
	cs := make([]int32, len(ks))
	for i, k := range ks {
		cs[i] = c.class(t, k)
	}
	return cs
}

func (c *classifier) class(t *Text, k int) int32 {
	label := uint32(t.labelOf(k))
	sum := hashLine(c.seed, label, t.Line(k))
	id, ok := c.byKey[sum]
	if !ok {
		id = c.add(t, k)
		c.byKey[sum] = id
		return id
	}
	if f := c.first[id]; same(f.t, f.k, t, k) {
		return id
	}
	// Another line has this hash: rare, and only ever costs time.
	if c.other == nil {
		c.other = make(map[string]int32)
	}
	c.key = append(binary.LittleEndian.AppendUint32(c.key[:0], label), t.Line(k)...)
	if id, ok := c.other[string(c.key)]; ok {
		return id
	}
	id = c.add(t, k)
	c.other[string(c.key)] = id
	return id
}

func (c *classifier) add(t *Text, k int) int32 {
	c.first = append(c.first, line{t, k})
	return int32(len(c.first) - 1)
}
