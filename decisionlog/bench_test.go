package decisionlog

import (
	"bytes"
	"testing"
)

// BenchmarkVerify verifies a chained log of 100,000 decisions; ns/op is
// per log, and the line rate is reported.
func BenchmarkVerify(b *testing.B) {
	var l builder
	for range 100_000 {
		l.decision()
	}
	data := l.bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		v := NewVerifier(Options{})
		if err := v.Add("log", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if r := v.Result(); !r.Intact() || r.Decisions != 100_000 {
			b.Fatalf("got %v, %d decisions", r.Problem, r.Decisions)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/line")
}

func benchLine() []byte {
	var l builder
	l.decision()
	return l.bytes()
}

func BenchmarkParse(b *testing.B) {
	line := benchLine()
	var p Parser
	var r Record
	for b.Loop() {
		if err := p.Parse(line, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashLine(b *testing.B) {
	line := benchLine()
	for b.Loop() {
		HashOf(line)
	}
}
