package inventory

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestScalarValue checks the tag and canonical form of scalars as YAML
// 1.2's core schema reads them, which is what keys are compared by.
func TestScalarValue(t *testing.T) {
	tests := []struct {
		yaml, tag, canon string
	}{
		{"a", "!!str", "a"},
		{"'1'", "!!str", "1"},
		{`"true"`, "!!str", "true"},
		{"|\n  x\n", "!!str", "x\n"},
		{"!!str 1", "!!str", "1"},
		{"~", "!!null", "null"},
		{"Null", "!!null", "null"},
		{"NULL", "!!null", "null"},
		{"True", "!!bool", "true"},
		{"FALSE", "!!bool", "false"},
		{"yes", "!!str", "yes"}, // YAML 1.1's boolean
		{"012", "!!int", "12"},
		{"+12", "!!int", "12"},
		{"-0", "!!int", "0"},
		{"0o17", "!!int", "15"},
		{"0x1F", "!!int", "31"},
		{"99999999999999999999", "!!int", "99999999999999999999"},
		{"0b101", "!!str", "0b101"}, // YAML 1.1's binary
		{"1_000", "!!str", "1_000"}, // YAML 1.1's digit groups
		{"2001-12-14", "!!str", "2001-12-14"},
		{"!!int 0b101", "!!int", "5"},
		{"1.0", "!!float", "1"},
		{"1.", "!!float", "1"},
		{".5e1", "!!float", "5"},
		{"1e400", "!!float", "1e+400"},
		{"-.Inf", "!!float", "-.inf"},
		{".NAN", "!!float", ".nan"},
		{"1.2.3", "!!str", "1.2.3"},
		{"!!float 2", "!!float", "2"},
		{"!x 1", "!x", "1"},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		tag, canon := scalarValue(doc.Content[0])
		if tag != tt.tag || canon != tt.canon {
			t.Errorf("%q: got %s %q, want %s %q", tt.yaml, tag, canon, tt.tag, tt.canon)
		}
	}
}
