package inventory

import (
	"runtime"
	"slices"
	"strings"
	"sync"
)

// A sortedName is an actor's name with its index in file order. hi and lo
// hold the name's first 16 bytes, big-endian and padded with zeros, so
// that most comparisons while sorting are two integer compares instead of
// following two string pointers into memory the YAML parser scattered.
// Equal hi and lo fall back to comparing the names.
type sortedName struct {
	hi, lo uint64
	name   string
	i      int32
}

func prefix(s string) (hi, lo uint64) {
	var b [16]byte
	copy(b[:], s)
	for _, c := range b[:8] {
		hi = hi<<8 | uint64(c)
	}
	for _, c := range b[8:] {
		lo = lo<<8 | uint64(c)
	}
	return hi, lo
}

// compareNames orders by name in byte order, then by file order.
func compareNames(a, b sortedName) int {
	switch {
	case a.hi != b.hi:
		if a.hi < b.hi {
			return -1
		}
		return 1
	case a.lo != b.lo:
		if a.lo < b.lo {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return int(a.i - b.i)
}

// sortNames returns the actors' names sorted by name, then file order.
func sortNames(actors []Actor) []sortedName {
	names := make([]sortedName, len(actors))
	for i := range actors {
		n := &names[i]
		n.name, n.i = actors[i].Name, int32(i)
		n.hi, n.lo = prefix(n.name)
	}
	if !slices.IsSortedFunc(names, compareNames) {
		sortParallel(names)
	}
	return names
}

// sortParallel sorts names, large ones in two halves at once, merged.
func sortParallel(names []sortedName) {
	if len(names) < 1<<14 || runtime.GOMAXPROCS(0) < 2 {
		slices.SortFunc(names, compareNames)
		return
	}
	mid := len(names) / 2
	var wg sync.WaitGroup
	wg.Go(func() { slices.SortFunc(names[:mid], compareNames) })
	slices.SortFunc(names[mid:], compareNames)
	wg.Wait()
	left := slices.Clone(names[:mid])
	right := names[mid:]
	// Merge into names; the write position never passes the unread part
	// of right, which sits at its end.
	i, j, k := 0, 0, 0
	for i < len(left) && j < len(right) {
		if compareNames(right[j], left[i]) < 0 {
			names[k] = right[j]
			j++
		} else {
			names[k] = left[i]
			i++
		}
		k++
	}
	copy(names[k:], left[i:])
}

// lookup returns the index of the first actor named name.
func lookup(names []sortedName, name string) (int32, bool) {
	hi, lo := prefix(name)
	// File indexes are >= 0: this finds the first actor of that name.
	k, _ := slices.BinarySearchFunc(names, sortedName{hi: hi, lo: lo, name: name, i: -1}, compareNames)
	if k < len(names) && names[k].name == name {
		return names[k].i, true
	}
	return 0, false
}

// A slab hands out the small string slices and strings of the actors'
// subjects from large blocks: two allocations per actor, at 100,000
// actors, cost more than the rest of checking them.
type slab struct {
	strs []string
	buf  strings.Builder
}

// subjects returns an empty slice with room for n subjects. Appending
// more than n allocates, as usual.
func (s *slab) subjects(n int) []string {
	if cap(s.strs)-len(s.strs) < n {
		s.strs = make([]string, 0, max(n, 4096))
	}
	out := s.strs[len(s.strs) : len(s.strs) : len(s.strs)+n]
	s.strs = s.strs[:len(s.strs)+n]
	return out
}

// iam returns "iam:"+name. The strings share a few large buffers: a
// strings.Builder never changes bytes it has written, so what String
// returned stays valid while the builder grows, as long as it does not
// reallocate, which the capacity check keeps it from doing.
func (s *slab) iam(name string) string {
	n := len("iam:") + len(name)
	if s.buf.Cap()-s.buf.Len() < n {
		s.buf = strings.Builder{}
		s.buf.Grow(max(n, 64<<10))
	}
	start := s.buf.Len()
	s.buf.WriteString("iam:")
	s.buf.WriteString(name)
	return s.buf.String()[start:]
}
