package yamlerr

import (
	"testing"

	"gopkg.in/yaml.v3"
)

func TestLine(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		msg       string
		ok        bool
	}{
		// A scanner error: yaml.v3 counts from 1 already.
		{"scanner", "a: 1\nb: \"open\n", 2, "found unexpected end of stream", true},
		// Parser errors: yaml.v3 says "line 1" for the second line, where
		// the sequence or flow that is not closed starts.
		{"parser", "a:\n  - 1\n  b: 2\n", 2, "did not find expected '-' indicator", true},
		{"parser in flow", "x: 0\na: [1, 2\nb: 3\n", 2, "did not find expected ',' or ']'", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			err := yaml.Unmarshal([]byte(tt.src), &n)
			if err == nil {
				t.Fatal("got no error, want a syntax error")
			}
			line, msg, ok := Line(err)
			if line != tt.line || msg != tt.msg || ok != tt.ok {
				t.Errorf("got %d %q %v, want %d %q %v (from %q)", line, msg, ok, tt.line, tt.msg, tt.ok, err)
			}
		})
	}
}

func TestLineWithoutPosition(t *testing.T) {
	var n yaml.Node
	err := yaml.Unmarshal([]byte("\xff"), &n)
	if err == nil {
		t.Fatal("got no error for invalid UTF-8")
	}
	if _, msg, ok := Line(err); ok || msg == "" {
		t.Errorf("got ok %v msg %q, want no line and the message", ok, msg)
	}
}
