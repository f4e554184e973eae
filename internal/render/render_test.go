package render

import "testing"

func TestMarkdown(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"code", Code("a`b"), "``a`b``"},
		{"code edge backtick", Code("`a"), "`` `a ``"},
		{"code terminal escape", Code("a\x1b[31m"), "`a\\x1b[31m`"},
		{"fence", Fence("x ```` y"), "`````"},
		{"fence short", Fence("x"), "```"},
		{"cell", Cell("a|b\nc"), `a\|b c`},
		{"plain", Plain("*a* _b_ [c](d) <e>"), `\*a\* \_b\_ \[c](d) &lt;e>`},
		{"cut at a rune", Cut("héllo", 2), "h"},
		{"cut short", Cut("abc", 5), "abc"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestEscapeWorkflowCommand(t *testing.T) {
	tests := []struct {
		in, data, prop string
	}{
		{"plain", "plain", "plain"},
		{"50% a:b, c", "50%25 a:b, c", "50%25 a%3Ab%2C c"},
		{"line\r\nnext", `line\r\nnext`, `line\r\nnext`},
		{"%0A", "%250A", "%250A"},
		{"esc \x1b[2J::error::x", `esc \x1b[2J::error::x`, `esc \x1b[2J%3A%3Aerror%3A%3Ax`},
	}
	for _, tt := range tests {
		if got := WorkflowData(tt.in); got != tt.data {
			t.Errorf("WorkflowData(%q) = %q, want %q", tt.in, got, tt.data)
		}
		if got := WorkflowProperty(tt.in); got != tt.prop {
			t.Errorf("WorkflowProperty(%q) = %q, want %q", tt.in, got, tt.prop)
		}
	}
}
