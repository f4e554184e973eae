package policy

import (
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

const (
	examplePolicy   = "../examples/ops-warden/policy_package.md"
	exampleRegistry = "../examples/ops-warden/production_registry_snapshot.json"
)

// exampleEvaluator binds the ops-warden example package to the production
// fixture.
func exampleEvaluator(tb testing.TB) *Evaluator {
	tb.Helper()
	p, err := Load(examplePolicy)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	s, err := registry.Load(exampleRegistry)
	if err != nil {
		tb.Fatalf("registry.Load: %v", err)
	}
	e, err := NewEvaluator(p, s)
	if err != nil {
		tb.Fatalf("NewEvaluator: %v", err)
	}
	return e
}

func TestExampleRunTests(t *testing.T) {
	e := exampleEvaluator(t)
	results := e.RunTests()
	if len(results) < 40 {
		t.Errorf("got %d tests, want at least 40", len(results))
	}
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("line %d: %s: got %v, want %v (err %v)", r.Line, r.Name, r.Got, r.Want, r.Err)
		}
	}
}
