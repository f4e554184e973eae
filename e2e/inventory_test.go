package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// generate runs flex-auth generate on an inventory file holding data and
// returns its exit code, the snapshot and standard error.
func generate(t *testing.T, name, data string) (code int, snapshot, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, []byte(data))
	code, snapshot, stderr = runCLI(t, nil, "generate", path)
	return code, snapshot, strings.ReplaceAll(stderr, path, name)
}

// largeInventory returns an inventory of over 256 KiB, so large that
// generate parses its actors in parts: head, then actors with first
// among them and n agents that take everything from defaults, then tail.
func largeInventory(head, first, tail string, n int) string {
	var b strings.Builder
	b.WriteString(head + "actors:\n" + first)
	for i := range n {
		fmt.Fprintf(&b, "  agt-fill-%d: {}\n", i)
	}
	b.WriteString(tail)
	return b.String()
}

// TestGenerateSameAtEverySize checks that a large inventory, which
// generate cuts into parts, gives the snapshot the one-document parse
// gives, when an anchor is redefined inside the actors and aliased after
// them: the alias stands for the actors' anchor.
func TestGenerateSameAtEverySize(t *testing.T) {
	skipShort(t)
	t.Parallel()
	data := largeInventory("x-t: &t 3\n", "  agt-a: {ttl_hours: &t 5}\n", "defaults: {agt: {ttl_hours: *t}}\nversion: 1\n", 15_000)
	if len(data) < 256<<10 {
		t.Fatalf("the inventory is %d bytes, want 256 KiB or more", len(data))
	}
	code, large, stderr := generate(t, "inventory.yaml", data)
	if code != 0 {
		t.Fatalf("generate: exit %d, %s", code, stderr)
	}
	// A directive keeps generate from cutting the file: this is the
	// one-document parse of the same inventory.
	code, whole, stderr := generate(t, "inventory.yaml", "%YAML 1.1\n---\n"+data)
	if code != 0 {
		t.Fatalf("generate, one document: exit %d, %s", code, stderr)
	}
	if large != whole {
		t.Errorf("the large inventory's snapshot differs from the one-document parse's")
	}
	var snap struct {
		Actors []struct {
			Name string `json:"name"`
			TTL  int    `json:"default_ttl_hours"`
		} `json:"actors"`
	}
	if err := json.Unmarshal([]byte(large), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Actors) != 15_001 {
		t.Fatalf("got %d actors, want 15001", len(snap.Actors))
	}
	for _, a := range snap.Actors {
		if a.TTL != 5 {
			t.Fatalf("%s: got default_ttl_hours %d, want 5 (defaults.agt.ttl_hours is *t, and &t is last 5)", a.Name, a.TTL)
		}
	}

	// The small form of the same inventory gives the same TTLs.
	code, small, stderr := generate(t, "small.yaml", largeInventory("x-t: &t 3\n", "  agt-a: {ttl_hours: &t 5}\n", "defaults: {agt: {ttl_hours: *t}}\nversion: 1\n", 3))
	if code != 0 || !strings.Contains(small, `"default_ttl_hours": 5`) || strings.Contains(small, `"default_ttl_hours": 3`) {
		t.Errorf("small form: exit %d, %s\n%s", code, stderr, small)
	}

	// version: *v is the actors' 2, which this flex-auth does not know.
	line := 3 + 15_000 + 2 // head, actors:, agt-a, the agents, defaults, version
	code, _, stderr = generate(t, "inventory.yaml", largeInventory("x-v: &v 1\n", "  agt-a: {ttl_hours: 1, x-v: &v 2}\n", "defaults: {agt: {ttl_hours: 1}}\nversion: *v\n", 15_000))
	want := fmt.Sprintf("inventory.yaml:%d:10: unsupported version 2; this flex-auth understands version 1\n", line)
	if code != 1 || stderr != want {
		t.Errorf("version: *v: got exit %d, %q; want exit 1, %q", code, stderr, want)
	}
}

// TestGenerateDuplicateKeys checks that keys are compared as YAML values,
// and that a duplicate written as an alias is reported at the alias.
func TestGenerateDuplicateKeys(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const head = "version: 1\ndefaults: {agt: {ttl_hours: 24}}\nactors:\n  agt-a: {}\n"
	tests := []struct {
		name, yaml string
		code       int
		stderr     string
	}{
		{"one boolean", head + "x-notes: {true: 1, True: 2}\n", 1,
			`inventory.yaml:5:20: duplicate key "True" (boolean true, first at line 5)` + "\n"},
		{"one integer", head + "x-notes: {0x10: a, 16: b}\n", 1,
			`inventory.yaml:5:20: duplicate key "16" (integer 16, first at line 5)` + "\n"},
		{"an integer and a string", head + "x-notes: {1: a, \"1\": b}\n", 0, ""},
		{"an alias of an earlier key", head + "  agt-b:\n    &k ttl_hours: 1\n    *k : 2\n", 1,
			`inventory.yaml:7:5: actor "agt-b": duplicate key "ttl_hours" (first at line 6)` + "\n"},
		{"an actor and its alias", "version: 1\ndefaults: {agt: {ttl_hours: 24}}\nx-n: &n agt-a\nactors:\n  agt-a: {}\n  *n : {}\n", 1,
			`inventory.yaml:6:3: actors: duplicate actor "agt-a" (first at line 5)` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := generate(t, "inventory.yaml", tt.yaml)
			if code != tt.code || stderr != tt.stderr {
				t.Errorf("got exit %d, %q; want exit %d, %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
}

// TestGenerateYAML12 checks what generate does where yaml.v3 departs from
// YAML 1.2: the %YAML 1.2 directive is accepted, "\'" is refused, and the
// valid YAML 1.2 that yaml.v3 refuses is refused with a hint.
func TestGenerateYAML12(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const inv = "version: 1\ndefaults: {agt: {ttl_hours: 24}}\nactors:\n  agt-a: {subjects: [iam:role/a]}\n"
	_, plain, _ := generate(t, "inventory.yaml", inv)
	code, directive, stderr := generate(t, "inventory.yaml", "%YAML 1.2\n---\n"+inv)
	if code != 0 || directive != plain {
		t.Errorf("%%YAML 1.2: got exit %d, %s\n%s\nwant exit 0 and\n%s", code, stderr, directive, plain)
	}
	tests := []struct {
		name, yaml, stderr string
	}{
		{`"\'"`, inv + "  agt-b: {description: \"it\\'s\"}\n",
			`inventory.yaml:5:27: invalid YAML: "\'" is not an escape in YAML 1.2; write ' alone`},
		{`"\/"`, inv + "  agt-b: {subjects: [\"iam:role\\/b\"]}\n",
			`inventory.yaml:5:31: invalid YAML: found unknown escape character "\/": valid in YAML 1.2 and JSON, but not to the YAML parser flex-auth uses (gopkg.in/yaml.v3); write "/" alone`},
		{"? in flow", inv + "  agt-b: {description: why? because}\n",
			`inventory.yaml:5:1: invalid YAML: did not find expected ',' or '}' (a "?" in an unquoted value inside {...} or [...] is valid YAML 1.2, but the YAML parser flex-auth uses (gopkg.in/yaml.v3) takes it for a key: quote the value)`},
		{"1_000", inv + "  agt-b: {ttl_hours: 1_2}\n",
			`inventory.yaml:5:22: actor "agt-b": ttl_hours: want an integer from 1 to 8760, got string "1_2" (an integer in YAML 1.1, not in YAML 1.2)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := generate(t, "inventory.yaml", tt.yaml)
			if code != 1 || out != "" || stderr != tt.stderr+"\n" {
				t.Errorf("got exit %d, %q, stdout %d bytes; want exit 1, %q, no stdout", code, stderr, len(out), tt.stderr)
			}
		})
	}
}
