package drift

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

// benchSnapshots returns two registries of n actors that differ in one
// actor in a hundred: a changed TTL, principal or subject list, or an
// actor on one side only.
func benchSnapshots(n int) (expected, actual *registry.Snapshot) {
	var ea, aa []registry.Actor
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("agt-fleet-%07d", i)
		a := registry.Actor{Name: name, Type: "agt", Principal: "agt-fleet", DefaultTTLHours: 8, MaxTTLHours: 24,
			Subjects: []string{name, registry.IAMSubject(name)}}
		e := a
		e.Subjects = []string{name, registry.IAMSubject(name)}
		switch {
		case i%100 != 50:
		case i%400 == 50:
			e.MaxTTLHours = 12
		case i%400 == 150:
			e.Principal = "agt-fleet-v2"
		case i%400 == 250:
			e.Subjects = append(e.Subjects, "iam:role/fleet")
		default:
			ea = append(ea, e) // added
			continue
		}
		ea, aa = append(ea, e), append(aa, a)
	}
	return registry.New(registry.DefaultSource, registry.DefaultPolicyPackage, ea),
		registry.New(registry.DefaultSource, registry.DefaultPolicyPackage, aa)
}

// BenchmarkDrift measures what flex-auth drift does with two 100,000-actor
// snapshot files that differ in 1% of their actors: load and validate
// both, compare, diff, and render the text report.
func BenchmarkDrift(b *testing.B) {
	e, a := benchSnapshots(100_000)
	benchDriftFiles(b, e.Canonical(), a.Canonical(), 1000)
}

// BenchmarkDriftShapes measures the same on the rare shapes of
// largeShapes, where the diff is as large as the files: every actor
// changed, no actor in common, an ACTUAL in reverse order (where the
// diff's step budget runs out).
func BenchmarkDriftShapes(b *testing.B) {
	const n = 100_000
	want := map[string]int{"every actor changed": n, "no actor in common": 2 * n, "actors in reverse order": n}
	shapes := largeShapes(n)
	for _, name := range []string{"every actor changed", "no actor in common", "actors in reverse order"} {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			benchDriftFiles(b, shapes[name][0], shapes[name][1], want[name])
		})
	}
}

// benchDriftFiles writes expected and actual to files and measures drift
// on them, checking that it finds changes changes.
func benchDriftFiles(b *testing.B, expected, actual []byte, changes int) {
	dir := b.TempDir()
	ep, ap := filepath.Join(dir, "expected.json"), filepath.Join(dir, "actual.json")
	if err := os.WriteFile(ep, expected, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(ap, actual, 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := Run(context.Background(), ep, ap, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Changes) != changes || r.InSync() {
			b.Fatalf("got %d changes, want %d", len(r.Changes), changes)
		}
		if err := r.Render(io.Discard, Text, nil); err != nil {
			b.Fatal(err)
		}
	}
}
