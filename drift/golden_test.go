package drift

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenCases are the directories under testdata/cases; each holds an
// expected.(yaml|json) and an actual.json.
var goldenCases = []string{
	"in-sync",
	"reorder-only",
	"formatting-only",
	"hand-edited",
	"actor-added",
	"actor-removed",
	"member-changed",
	"policy-package",
}

var formatExt = map[Format]string{Text: "txt", JSON: "json", Markdown: "md", GitHub: "github"}

// caseReport loads and compares one case directory.
func caseReport(t testing.TB, name string) *Report {
	t.Helper()
	dir := filepath.Join("testdata", "cases", name)
	expected, _ := filepath.Glob(filepath.Join(dir, "expected.*"))
	if len(expected) != 1 {
		t.Fatalf("%s: got %d expected.* files, want 1", dir, len(expected))
	}
	r, err := Run(context.Background(), filepath.ToSlash(expected[0]), filepath.ToSlash(filepath.Join(dir, "actual.json")), Options{})
	if err != nil {
		t.Fatalf("Run %s: %v", name, err)
	}
	return r
}

// largeSnapshots returns two registries of n actors where every fifth
// actor differs, a few are added and a few removed.
func largeSnapshots(n, every int) (expected, actual *registry.Snapshot) {
	var ea, aa []registry.Actor
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("agt-runner-%06d", i)
		a := registry.Actor{Name: name, Type: "agt", Principal: "agt-runner", DefaultTTLHours: 8, MaxTTLHours: 24,
			Subjects: []string{name, registry.IAMSubject(name)}}
		e := a
		e.Subjects = []string{name, registry.IAMSubject(name)}
		if i%every == every-1 {
			switch i / every % 4 {
			case 0:
				e.MaxTTLHours = 12
			case 1:
				e.Principal = "agt-runner-v2"
			case 2:
				e.Subjects = append(e.Subjects, "iam:role/runner")
			case 3:
				// in EXPECTED only: added
				ea = append(ea, e)
				continue
			}
		}
		if i%(every*7) == 3 {
			aa = append(aa, a) // in ACTUAL only: removed
			continue
		}
		ea, aa = append(ea, e), append(aa, a)
	}
	return registry.New("ops-warden", registry.DefaultPolicyPackage, ea), registry.New("ops-warden", registry.DefaultPolicyPackage, aa)
}

func largeReport(t testing.TB) *Report {
	e, a := largeSnapshots(1500, 5)
	es, err := ParseSnapshot("large/expected.json", e.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	as, err := ParseSnapshot("large/actual.json", a.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	return Compare(es, as)
}

// Policy digests for the policy cases: the checked-in package's, and
// another.
var (
	checkedInDigest = "sha256:" + strings.Repeat("1", 64)
	otherDigest     = "sha256:" + strings.Repeat("2", 64)
)

// checkedInPolicy is the checked-in package of the policy cases.
var checkedInPolicy = &Policy{Package: registry.DefaultPolicyPackage, Digest: checkedInDigest, File: "examples/ops-warden/policy_package.md"}

// A policyCase compares a case directory's EXPECTED with its ACTUAL's
// registry as a running flex-auth or a publication serves it, with the
// policy digests given ("" when a side does not say), and with the
// checked-in package or not (drift --policy).
type policyCase struct {
	name, dir              string
	expectedKind           Kind // File or Inventory: as in the directory
	kind                   Kind
	expected, actual       string // the policy digests the sides serve
	checkedIn              bool
	inSync, policyCompared bool
	findings               []FindingKind
	notes                  int
}

const (
	runtimeSource     = "http://127.0.0.1:8080"
	publicationSource = "oci://127.0.0.1:5000/flex-auth/publication:production"
)

var policyCases = []policyCase{
	{name: "policy-in-sync", dir: "in-sync", kind: Runtime, actual: checkedInDigest, checkedIn: true, inSync: true, policyCompared: true},
	{name: "policy-drift", dir: "in-sync", kind: Runtime, actual: otherDigest, checkedIn: true, policyCompared: true, findings: []FindingKind{PolicyDrift}},
	{name: "policy-unstated", dir: "in-sync", kind: Runtime, checkedIn: true, inSync: true, notes: 1},
	{name: "policy-registry-drift", dir: "member-changed", kind: Publication, actual: otherDigest, checkedIn: true, policyCompared: true, findings: []FindingKind{PolicyDrift}},
	{name: "policy-served-differ", dir: "in-sync", expectedKind: Publication, kind: Runtime, expected: otherDigest, actual: checkedInDigest, inSync: true, notes: 1},
}

// served makes a side of the snapshot a case file holds (an inventory
// generated), as a service or publication at source serves it, with the
// policy digest ("" for none).
func served(t testing.TB, side *Side, kind Kind, source, digest string) *Side {
	t.Helper()
	s, err := decode(source, kind, side.Snapshot.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	if digest != "" {
		s.Policy = &Policy{Package: s.Snapshot.PolicyPackage, Digest: digest}
	}
	return s
}

func (pc policyCase) report(t testing.TB) *Report {
	t.Helper()
	dir := filepath.Join("testdata", "cases", pc.dir)
	expected, _ := filepath.Glob(filepath.Join(dir, "expected.*"))
	if len(expected) != 1 {
		t.Fatalf("%s: got %d expected.* files, want 1", dir, len(expected))
	}
	e, err := Load(context.Background(), filepath.ToSlash(expected[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Load(context.Background(), filepath.ToSlash(filepath.Join(dir, "actual.json")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pc.expectedKind == Publication {
		e = served(t, e, Publication, publicationSource, pc.expected)
	}
	source := runtimeSource
	if pc.kind == Publication {
		source = publicationSource
	}
	var want *Policy
	if pc.checkedIn {
		want = checkedInPolicy
	}
	return ComparePolicy(e, served(t, a, pc.kind, source, pc.actual), want)
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./drift -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: output differs from the golden file (go test ./drift -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestGolden renders every case in every format and compares with
// testdata/golden/<case>.<ext>.
func TestGolden(t *testing.T) {
	reports := map[string]func(testing.TB) *Report{"large": largeReport}
	names := append([]string{}, goldenCases...)
	for _, pc := range policyCases {
		names = append(names, pc.name)
		reports[pc.name] = pc.report
	}
	names = append(names, "large")
	for _, name := range names {
		var r *Report
		if report, ok := reports[name]; ok {
			r = report(t)
		} else {
			r = caseReport(t, name)
		}
		for _, f := range Formats {
			t.Run(name+"/"+string(f), func(t *testing.T) {
				var out, summary bytes.Buffer
				if err := r.Render(&out, f, &summary); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join("testdata", "golden", name+"."+formatExt[f]), out.Bytes())
				if f == GitHub {
					if got, want := summary.String(), r.Markdown(MaxSummaryBytes); got != want {
						t.Errorf("step summary: got %d bytes, want the Markdown report (%d bytes)", len(got), len(want))
					}
				} else if summary.Len() != 0 {
					t.Errorf("format %s wrote %d bytes of step summary, want none", f, summary.Len())
				}
			})
		}
	}
}

// TestGoldenVerdicts pins what each case is, independently of the
// rendering.
func TestGoldenVerdicts(t *testing.T) {
	tests := []struct {
		name     string
		inSync   bool
		changes  []string
		findings []FindingKind
	}{
		{name: "in-sync", inSync: true},
		{name: "reorder-only", findings: []FindingKind{Formatting}},
		{name: "formatting-only", findings: []FindingKind{Formatting}},
		{name: "hand-edited", changes: []string{"~ agt-state-hub-bridge.max_ttl_hours: 48 -> 24"}, findings: []FindingKind{EditedByHand}},
		{name: "actor-added", changes: []string{"+ agt-new-runner"}},
		{name: "actor-removed", changes: []string{"- atm-old-sync"}},
		{name: "member-changed", changes: []string{
			"~ agt-state-hub-bridge.principal: agt-task-bridge -> agt-task-runner",
			"~ agt-state-hub-bridge.default_ttl_hours: 24 -> 12",
			"~ agt-state-hub-bridge.subjects: [agt-state-hub-bridge, iam:agt-state-hub-bridge] -> [agt-state-hub-bridge, iam:agt-state-hub-bridge, iam:role/state-hub]",
		}},
		{name: "policy-package", changes: []string{"~ policy_package: ops-warden/legacy-signing -> ops-warden/ssh-signing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := caseReport(t, tt.name)
			if got := r.InSync(); got != tt.inSync {
				t.Errorf("InSync() = %v, want %v", got, tt.inSync)
			}
			var changes []string
			for _, c := range r.Changes {
				changes = append(changes, c.String())
			}
			if got, want := strings.Join(changes, "\n"), strings.Join(tt.changes, "\n"); got != want {
				t.Errorf("changes:\ngot  %q\nwant %q", got, want)
			}
			var kinds []FindingKind
			for _, f := range r.Findings {
				kinds = append(kinds, f.Kind)
			}
			if got, want := fmt.Sprint(kinds), fmt.Sprint(tt.findings); got != want {
				t.Errorf("findings: got %s, want %s", got, want)
			}
			if got, want := r.Diff == "", tt.inSync; got != want {
				t.Errorf("empty diff: got %v, want %v (in sync)", got, want)
			}
		})
	}
}

// TestPolicyGoldenVerdicts pins what each policy case is, independently
// of the rendering.
func TestPolicyGoldenVerdicts(t *testing.T) {
	for _, pc := range policyCases {
		t.Run(pc.name, func(t *testing.T) {
			r := pc.report(t)
			if got := r.InSync(); got != pc.inSync {
				t.Errorf("InSync() = %v, want %v", got, pc.inSync)
			}
			if got := r.policyCompared(); got != pc.policyCompared {
				t.Errorf("policyCompared() = %v, want %v", got, pc.policyCompared)
			}
			var kinds []FindingKind
			for _, f := range r.Findings {
				if f.Kind == PolicyDrift {
					kinds = append(kinds, f.Kind)
				}
			}
			if got, want := fmt.Sprint(kinds), fmt.Sprint(pc.findings); got != want {
				t.Errorf("policy findings: got %s, want %s", got, want)
			}
			if len(r.Notes) != pc.notes {
				t.Errorf("got notes %q, want %d", r.Notes, pc.notes)
			}
		})
	}
}
