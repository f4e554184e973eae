package generate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/inventory"
)

const syncDoc = "../docs/ops-warden-registry-sync.md"

// fencedAfter returns the first fenced block of doc after marker.
func fencedAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, marker)
	if !ok {
		t.Fatalf("%s: no %q", syncDoc, marker)
	}
	_, rest, _ = strings.Cut(rest, "```")
	_, rest, _ = strings.Cut(rest, "\n") // the info string
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: unterminated block after %q", syncDoc, marker)
	}
	return block
}

// TestDocInventoryExample checks that the example inventory the operator
// documentation shows is a valid inventory.
func TestDocInventoryExample(t *testing.T) {
	doc, err := os.ReadFile(syncDoc)
	if err != nil {
		t.Fatal(err)
	}
	example := fencedAfter(t, string(doc), "## The inventory")
	inv, err := inventory.Parse("doc.yaml", []byte(example))
	if err != nil {
		t.Fatalf("the documented inventory is invalid:\n%v", err)
	}
	if len(inv.Actors) != 2 || len(inv.Disabled) != 1 {
		t.Errorf("got %d actors and %d disabled, want 2 and 1", len(inv.Actors), len(inv.Disabled))
	}
}

// TestDocDigestCommand runs the python3 one-liner the documentation gives
// for recomputing a digest, on the fixture and on the golden snapshots.
func TestDocDigestCommand(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	doc, err := os.ReadFile(syncDoc)
	if err != nil {
		t.Fatal(err)
	}
	block := fencedAfter(t, string(doc), "<!-- digest-command")
	script, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(block), "python3 -c '"), "' ")
	if !ok {
		t.Fatalf("cannot find the python3 -c '...' command in:\n%s", block)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	files = append(files, filepath.Join("..", "examples", "ops-warden", "production_registry_snapshot.json"))
	for _, f := range files {
		s, err := File(strings.TrimSuffix(f, ".json")+".yaml", "")
		if strings.Contains(f, "examples") {
			s, err = File(filepath.Join("..", "examples", "ops-warden", "inventory.yaml"), "")
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(python, "-c", script, f).Output()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := strings.TrimSpace(string(out)); got != s.Digest {
			t.Errorf("%s: the documented command prints %s, want %s", f, got, s.Digest)
		}
	}
}
