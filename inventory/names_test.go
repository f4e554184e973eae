package inventory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestSortNames(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 100, 1 << 14, 40_001} {
		actors := make([]Actor, n)
		for i := range actors {
			// Short and long names, shared 16-byte prefixes, duplicates.
			switch r.IntN(4) {
			case 0:
				actors[i].Name = fmt.Sprintf("agt-%d", r.IntN(n+1))
			case 1:
				actors[i].Name = fmt.Sprintf("agt-state-hub-bridge-%d", r.IntN(n+1))
			case 2:
				actors[i].Name = fmt.Sprintf("atm-state-hub-br-%d", r.IntN(n+1))
			default:
				actors[i].Name = fmt.Sprintf("adm-%s", strings.Repeat("x", r.IntN(30)))
			}
		}
		names := sortNames(actors)
		if len(names) != n {
			t.Fatalf("n=%d: got %d names", n, len(names))
		}
		for k := 1; k < len(names); k++ {
			a, b := names[k-1], names[k]
			if a.name > b.name || a.name == b.name && a.i >= b.i {
				t.Fatalf("n=%d: %q (%d) before %q (%d)", n, a.name, a.i, b.name, b.i)
			}
		}
		seen := make([]bool, n)
		for _, nm := range names {
			if seen[nm.i] || actors[nm.i].Name != nm.name {
				t.Fatalf("n=%d: index %d repeated or wrong", n, nm.i)
			}
			seen[nm.i] = true
		}
		for _, a := range actors[:min(n, 50)] {
			i, ok := lookup(names, a.Name)
			if !ok || actors[i].Name != a.Name || slices.IndexFunc(actors, func(b Actor) bool { return b.Name == a.Name }) != int(i) {
				t.Fatalf("n=%d: lookup(%q) got %d, %v; want the first actor of that name", n, a.Name, i, ok)
			}
		}
		if _, ok := lookup(names, "agt-none-such"); ok {
			t.Errorf("n=%d: lookup of a missing name succeeded", n)
		}
	}
}

func TestPermute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 1000} {
		actors := make([]Actor, n)
		for i := range actors {
			actors[i].Line = i
		}
		perm := make([]int32, n)
		for i := range perm {
			perm[i] = int32(i)
		}
		r.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		want := slices.Clone(perm)
		permute(actors, perm)
		for k := range actors {
			if actors[k].Line != int(want[k]) {
				t.Fatalf("n=%d: position %d holds old %d, want %d", n, k, actors[k].Line, want[k])
			}
		}
	}
}
