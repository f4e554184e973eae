package generate

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/inventory/inventorytest"
	"github.com/coulomb/flex-auth/registry"
)

// TestMeasure checks Measure against encoding/json, which kubectl uses to
// write the last-applied-configuration annotation.
func TestMeasure(t *testing.T) {
	inv, err := inventory.Parse("large.yaml", inventorytest.Large(3000))
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := registry.Load("../examples/ops-warden/production_registry_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	odd := registry.New(registry.DefaultSource, "", []registry.Actor{{Name: "agt-a", Type: "agt", Principal: "agt-a",
		DefaultTTLHours: 1, MaxTTLHours: 1, Subjects: []string{"a&b<c>d", "agt-a", "iam:agt-a", `x\y`}}})
	for name, s := range map[string]*registry.Snapshot{"fixture": fixture, "3000 actors": Snapshot(inv, ""), "escapes": odd} {
		t.Run(name, func(t *testing.T) {
			canonical := s.Canonical()
			quoted, err := json.Marshal(string(canonical))
			if err != nil {
				t.Fatal(err)
			}
			want := Size{Bytes: int64(len(canonical)), Quoted: int64(len(quoted))}
			if got := Measure(s); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestConfigMapWarning(t *testing.T) {
	tests := []struct {
		name string
		size Size
		want string // a substring; "" for no warning
	}{
		{"small", Size{Bytes: 2 << 10, Quoted: 3 << 10}, ""},
		{"annotation limit exactly", Size{Bytes: 200 << 10, Quoted: AnnotationsLimit}, ""},
		{"over the annotation limit once quoted", Size{Bytes: 250 << 10, Quoted: AnnotationsLimit + 1},
			"the snapshot is 250 KiB (257 KiB as JSON in kubectl's last-applied-configuration annotation, limited to 256 KiB): " +
				"client-side `kubectl apply` cannot apply a ConfigMap holding it; use `kubectl apply --server-side`, or a source that is not a ConfigMap"},
		{"ConfigMap limit exactly", Size{Bytes: ConfigMapLimit, Quoted: ConfigMapLimit + 9000}, "kubectl apply --server-side"},
		{"over the ConfigMap limit", Size{Bytes: ConfigMapLimit + 1, Quoted: ConfigMapLimit + 9000},
			"the snapshot is 1025 KiB, more than a Kubernetes ConfigMap can hold (1024 KiB): serve it from a source that is not a ConfigMap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.size.ConfigMapWarning()
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// BenchmarkMeasure is the cost generate adds to measure a 100,000-actor
// snapshot (BenchmarkGenerate is the rest).
func BenchmarkMeasure(b *testing.B) {
	inv, err := inventory.Parse("bench.yaml", inventorytest.Large(100_000))
	if err != nil {
		b.Fatal(err)
	}
	s := Snapshot(inv, "")
	b.ReportAllocs()
	for b.Loop() {
		Measure(s)
	}
}
