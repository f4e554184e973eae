package drift

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/coulomb/flex-auth/inventory/inventorytest"

	"github.com/coulomb/flex-auth/drift/udiff/udifftest"
)

var annotationLineRE = regexp.MustCompile(`(?m)^::error file=[^,]*,line=(\d+),`)

// FuzzDriftInventory loads an arbitrary inventory the way drift does (a
// .yaml path: generated in memory, its lines kept for annotations). It must
// never panic; an accepted inventory is in sync with its own canonical
// snapshot, either way round; compared with the example snapshot, either
// way round, every format renders, the diff turns ACTUAL into EXPECTED,
// and each github annotation points at a line of the inventory.
func FuzzDriftInventory(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "cases", "*", "expected.yaml"))
	seeds = append(seeds, filepath.Join("..", "examples", "ops-warden", "inventory.yaml"))
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(inventorytest.Large(5))
	f.Add([]byte("version: 1\ndefaults: {agt: {ttl_hours: 24}}\nactors:\n  agt-state-hub-bridge: {max_ttl_hours: 12, subjects: [iam:role/x]}\n"))
	example := fixture(f)
	// One file per fuzzing process, rewritten for each input.
	path := filepath.Join(f.TempDir(), "inventory.yaml")
	f.Fuzz(func(t *testing.T, inv []byte) {
		if len(inv) > 64<<10 {
			return
		}
		if err := os.WriteFile(path, inv, 0o600); err != nil {
			t.Fatal(err)
		}
		side, err := Load(context.Background(), path, Options{})
		if err != nil {
			return
		}
		own := mustSide(t, "own.json", side.Snapshot.Canonical())
		for _, r := range []*Report{Compare(side, own), Compare(own, side)} {
			if !r.InSync() || len(r.Changes) != 0 {
				t.Fatalf("an inventory against its own snapshot: in sync %v, changes %v, findings %+v", r.InSync(), r.Changes, r.Findings)
			}
		}
		lines := bytes.Count(inv, []byte("\n")) + 1
		snap := mustSide(t, "example.json", example)
		for _, r := range []*Report{Compare(snap, side), Compare(side, snap)} {
			if got := udifftest.Apply(t, string(r.Actual.Text), r.Diff); got != string(r.Want) {
				t.Fatal("the diff applied to ACTUAL does not give EXPECTED")
			}
			for _, format := range Formats {
				var out bytes.Buffer
				if err := r.Render(&out, format, &bytes.Buffer{}); err != nil {
					t.Fatalf("render %s: %v", format, err)
				}
				if format != GitHub || r.Actual != side {
					continue
				}
				for _, m := range annotationLineRE.FindAllStringSubmatch(out.String(), -1) {
					if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
						t.Fatalf("annotation at line %d of a %d-line inventory:\n%s", n, lines, out.String())
					}
				}
			}
		}
	})
}
