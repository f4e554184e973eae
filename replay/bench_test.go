package replay

import (
	"bytes"
	"testing"

	"github.com/coulomb/flex-auth/policy"
)

// BenchmarkReplay decides a log of about 100,000 decisions again under
// the pair that made them; the rate per line is reported.
func BenchmarkReplay(b *testing.B) {
	log := record(b, 100_000/len(bodies))
	ev := pair(b, nil)
	b.SetBytes(int64(len(log)))
	var lines int
	for b.Loop() {
		rp, err := New(Options{Pairs: []*policy.Evaluator{ev}})
		if err != nil {
			b.Fatal(err)
		}
		if err := rp.Add("log", bytes.NewReader(log)); err != nil {
			b.Fatal(err)
		}
		r := rp.Report()
		if r.Changed() != 0 {
			b.Fatalf("%d changed", r.Changed())
		}
		lines = r.Decisions
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(lines), "ns/line")
}
