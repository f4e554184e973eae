package generate

import (
	"flag"
	"os"
	"testing"

	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/inventory/inventorytest"
	"github.com/coulomb/flex-auth/registry"
)

var benchInventoryPath = flag.String("write-bench-inventory", "", "write the benchmark's 100,000-actor inventory to `FILE` (for measuring flex-auth generate's peak memory) and stop")

func TestWriteBenchInventory(t *testing.T) {
	if *benchInventoryPath == "" {
		t.Skip("set -write-bench-inventory FILE to write the benchmark inventory")
	}
	if err := os.WriteFile(*benchInventoryPath, inventorytest.Large(100_000), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLargeInventory(t *testing.T) {
	data := inventorytest.Large(2000)
	inv, err := inventory.Parse("large.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(inv.Actors) + len(inv.Disabled); got != 2000 {
		t.Errorf("got %d actors, want 2000", got)
	}
	if _, err := registry.Parse(Snapshot(inv, "").Canonical()); err != nil {
		t.Errorf("registry.Parse of the generated snapshot: %v", err)
	}
}

// BenchmarkGenerate measures the whole of flex-auth generate on 100,000
// actors: parse and check the inventory, build and seal the snapshot, and
// encode it canonically.
func BenchmarkGenerate(b *testing.B) {
	data := inventorytest.Large(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		inv, err := inventory.Parse("bench.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if out := Snapshot(inv, "").Canonical(); len(out) == 0 {
			b.Fatal("empty snapshot")
		}
	}
}

// BenchmarkParse measures the inventory parser alone.
func BenchmarkParse(b *testing.B) {
	data := inventorytest.Large(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inventory.Parse("bench.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
