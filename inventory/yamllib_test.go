package inventory

import (
	"testing"

	yamlcont "go.yaml.in/yaml/v3"
	"gopkg.in/yaml.v3"
)

// TestYAMLLibraries records how gopkg.in/yaml.v3, which flex-auth uses
// (CONTRACT section 1), and go.yaml.in/yaml/v3, its maintained
// continuation with the same API, depart from YAML 1.2 where an inventory
// may notice. They read every case alike (the continuation's scanner and
// parser are yaml.v3's), so switching would change nothing here. If a
// later version of either reads a case otherwise, this test fails and
// says which: then switching, or dropping a workaround, is worth a look.
func TestYAMLLibraries(t *testing.T) {
	tests := []struct {
		name, yaml string
		// yaml12 is what YAML 1.2 reads as the value of a: its tag, or
		// "error"; libraries what both libraries read today.
		yaml12, libraries string
		// flexAuth is what flex-auth does about the difference.
		flexAuth string
	}{
		{"? in a flow plain scalar", "a: {description: why? because}\n", "!!map", "error", "refuses it, with a hint to quote the value"},
		{"? in a flow sequence", "a: [why?because]\n", "!!seq", "error", "refuses it, with a hint to quote the value"},
		{"%YAML 1.2 directive", "%YAML 1.2\n---\na: 1\n", "!!int", "error", "reads it as %YAML 1.1 (directive12)"},
		{`"\/" escape`, "a: \"\\/\"\n", "!!str", "error", "refuses it, with a hint to write / alone"},
		{`"\'" escape`, "a: \"\\'\"\n", "error", "!!str", "refuses it (checkEscapes)"},
		{"digit groups", "a: 1_000\n", "!!str", "!!int", "reads it as a string, as YAML 1.2 does (tagOf)"},
		{"binary", "a: 0b101\n", "!!str", "!!int", "reads it as a string, as YAML 1.2 does (tagOf)"},
		{"timestamp", "a: 2001-12-14\n", "!!str", "!!timestamp", "reads it as a string, as YAML 1.2 does (tagOf)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.yaml12 == tt.libraries {
				t.Fatal("the libraries read this as YAML 1.2 does: it does not belong here")
			}
			var a yaml.Node
			var b yamlcont.Node
			got := "error"
			if err := yaml.Unmarshal([]byte(tt.yaml), &a); err == nil {
				got = a.Content[0].Content[1].ShortTag()
			}
			if got != tt.libraries {
				t.Errorf("gopkg.in/yaml.v3: got %s, want %s (YAML 1.2: %s; flex-auth %s)", got, tt.libraries, tt.yaml12, tt.flexAuth)
			}
			got = "error"
			if err := yamlcont.Unmarshal([]byte(tt.yaml), &b); err == nil {
				got = b.Content[0].Content[1].ShortTag()
			}
			if got != tt.libraries {
				t.Errorf("go.yaml.in/yaml/v3: got %s, want %s (YAML 1.2: %s; flex-auth %s)", got, tt.libraries, tt.yaml12, tt.flexAuth)
			}
		})
	}
}
