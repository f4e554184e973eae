package inventory

import (
	"testing"

	"github.com/coulomb/flex-auth/inventory/inventorytest"
	"gopkg.in/yaml.v3"
)

// BenchmarkParse compares parsing 100,000 actors in parts (what Parse
// does) with parsing them as one document, and with yaml.v3 alone
// decoding the document into nodes, which bounds the one-document parse.
func BenchmarkParse(b *testing.B) {
	data := inventorytest.Large(100_000)
	for _, bm := range []struct {
		name  string
		chunk int
	}{{"chunked", chunkSize}, {"whole", 0}} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parse("bench.yaml", data, bm.chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("yaml.v3-only", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var n yaml.Node
			if err := yaml.Unmarshal(data, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
