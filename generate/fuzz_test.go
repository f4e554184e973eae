package generate

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/inventory/inventorytest"
	"github.com/coulomb/flex-auth/registry"
)

// FuzzParse feeds the inventory parser anything. It must never panic, and
// whatever it accepts must generate a snapshot that the registry loads,
// whose canonical form regenerates to the same bytes.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.yaml"))
	seeds = append(seeds, filepath.Join("..", "examples", "ops-warden", "inventory.yaml"))
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(inventorytest.Large(30))
	f.Add([]byte("version: 1\nactors:\n  agt-a: {ttl_hours: 1, subjects: [iam:agt-b]}\n  agt-b: {ttl_hours: 2, disabled: true}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := inventory.Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(inventory.Errors); !ok {
				t.Fatalf("got error %T, want inventory.Errors", err)
			}
			return
		}
		out := Snapshot(inv, "").Canonical()
		s, err := registry.Parse(out)
		if err != nil {
			t.Fatalf("registry rejects the generated snapshot: %v\n%s", err, out)
		}
		if again := s.Canonical(); !bytes.Equal(again, out) {
			t.Fatalf("canonical form does not regenerate:\n%s\nvs\n%s", out, again)
		}
		if again := Snapshot(inv, "").Canonical(); !bytes.Equal(again, out) {
			t.Fatal("generating twice gives different bytes")
		}
	})
}
