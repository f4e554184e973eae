package generate

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/inventory/inventorytest"
	"github.com/coulomb/flex-auth/registry"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden generates testdata/golden/*.yaml and compares each with its
// .json golden file.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "golden", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			s, err := File(in, "")
			if err != nil {
				t.Fatal(err)
			}
			got := s.Canonical()
			golden := strings.TrimSuffix(in, ".yaml") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got\n%s\nwant (%s)\n%s", got, golden, want)
			}
			// Whatever generate writes, the registry must load as it is.
			back, err := registry.Parse(got)
			if err != nil {
				t.Fatalf("registry.Parse: %v", err)
			}
			if !bytes.Equal(back.Canonical(), got) {
				t.Error("registry.Parse(...).Canonical() differs from what generate wrote")
			}
		})
	}
}

// TestExampleFixture proves that the checked-in production fixture is
// exactly what generate makes of the example inventory.
func TestExampleFixture(t *testing.T) {
	dir := filepath.Join("..", "examples", "ops-warden")
	s, err := File(filepath.Join(dir, "inventory.yaml"), registry.DefaultPolicyPackage)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "production_registry_snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Canonical(); !bytes.Equal(got, want) {
		t.Errorf("generate of the example inventory differs from production_registry_snapshot.json; got\n%s", got)
	}
	const digest = "sha256:57522a4d7480d7d72febe4e0fb97a792086beb7cdec90afa09f5fbe0905e4e13"
	if s.Digest != digest {
		t.Errorf("got digest %s, want %s", s.Digest, digest)
	}
}

func TestPolicyPackage(t *testing.T) {
	in := filepath.Join("testdata", "golden", "minimal.yaml")
	s, err := File(in, "ops-warden/ssh-signing-v2")
	if err != nil {
		t.Fatal(err)
	}
	if s.PolicyPackage != "ops-warden/ssh-signing-v2" || s.Source != "ops-warden" {
		t.Errorf("got policy package %q, source %q; want ops-warden/ssh-signing-v2, ops-warden", s.PolicyPackage, s.Source)
	}
	def, err := File(in, "")
	if err != nil {
		t.Fatal(err)
	}
	if def.PolicyPackage != registry.DefaultPolicyPackage || def.Digest == s.Digest {
		t.Errorf("got policy package %q, digest %s; want the default and a different digest", def.PolicyPackage, def.Digest)
	}
	_, err = File(in, "Not/Valid")
	if err == nil || !strings.Contains(err.Error(), `policy package: invalid name "Not/Valid"`) {
		t.Errorf("got %v, want an invalid policy package error", err)
	}
}

func TestReadErrors(t *testing.T) {
	_, err := File(filepath.Join("testdata", "missing.yaml"), "")
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read inventory: ") {
		t.Errorf("missing file: got %v, want a not-exist error", err)
	}

	_, err = Read("<stdin>", iotest.ErrReader(errors.New("boom")), "")
	if err == nil || err.Error() != "read inventory <stdin>: boom" {
		t.Errorf("failing reader: got %v", err)
	}

	_, err = Read("<stdin>", strings.NewReader("version: 1\nactors: {agt-x: {}}\n"), "")
	var errs inventory.Errors
	if !errors.As(err, &errs) || errs[0].File != "<stdin>" {
		t.Errorf("invalid inventory: got %v, want inventory.Errors naming <stdin>", err)
	}

	big := io0(MaxInventorySize + 1)
	_, err = Read("big.yaml", big, "")
	if !errors.Is(err, readfile.ErrTooLarge) || err.Error() != "read inventory big.yaml: larger than 64 MiB, the inventory limit" {
		t.Errorf("too large: got %v, want readfile.ErrTooLarge", err)
	}
}

// io0 returns a reader of n spaces.
func io0(n int) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{' '}, n)) }

// TestSnapshotLeavesInventory checks that Snapshot does not share or change
// the inventory's slices, which registry.New takes ownership of.
func TestSnapshotLeavesInventory(t *testing.T) {
	data := "version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-b: {subjects: [zz, aa]}\n  agt-a: {}\n"
	inv, err := inventory.Parse("inventory.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	s := Snapshot(inv, "")
	s.Actors[1].Subjects[0] = "changed"
	if got := inv.Actors[1].Subjects[0]; got != "aa" {
		t.Errorf("inventory subject changed to %q through the snapshot", got)
	}
	if got := strings.Join(inv.Actors[1].Subjects, ","); got != "aa,agt-b,iam:agt-b,zz" {
		t.Errorf("got subjects %s, want aa,agt-b,iam:agt-b,zz", got)
	}
}

// TestDeterministic checks that the order of actors and subjects in the
// inventory, and running twice, change nothing in the output.
func TestDeterministic(t *testing.T) {
	data := inventorytest.Large(500)
	want := generateBytes(t, data)
	if again := generateBytes(t, data); !bytes.Equal(again, want) {
		t.Fatal("two runs on the same inventory differ")
	}
	for seed := range uint64(5) {
		shuffled := shuffle(t, data, rand.New(rand.NewPCG(seed, 7)))
		if bytes.Equal(shuffled, data) {
			t.Fatal("shuffle changed nothing")
		}
		if got := generateBytes(t, shuffled); !bytes.Equal(got, want) {
			t.Errorf("seed %d: shuffled inventory gives different bytes", seed)
		}
	}
}

func generateBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	s, err := Read("inventory.yaml", bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	return s.Canonical()
}

// shuffle reorders the actors of an inventory and the subjects of each,
// adding a repeated subject here and there.
func shuffle(t *testing.T, data []byte, r *rand.Rand) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	for i := 0; i < len(root.Content); i += 2 {
		if root.Content[i].Value != "actors" {
			continue
		}
		actors := root.Content[i+1]
		pairs := len(actors.Content) / 2
		r.Shuffle(pairs, func(a, b int) {
			c := actors.Content
			c[2*a], c[2*b] = c[2*b], c[2*a]
			c[2*a+1], c[2*b+1] = c[2*b+1], c[2*a+1]
		})
		for j := 1; j < len(actors.Content); j += 2 {
			settings := actors.Content[j]
			for k := 0; k < len(settings.Content); k += 2 {
				if settings.Content[k].Value != "subjects" {
					continue
				}
				subs := settings.Content[k+1]
				subs.Content = append(subs.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "iam:" + actors.Content[j-1].Value})
				r.Shuffle(len(subs.Content), func(a, b int) { subs.Content[a], subs.Content[b] = subs.Content[b], subs.Content[a] })
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
