package serve

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coulomb/flex-auth/internal/redact"
)

func TestOneLine(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"one problem", errors.New("load registry: r.json: schema: missing"), "load registry: r.json: schema: missing"},
		{"two problems", errors.New("a\nb"), "a (and 1 more problem)"},
		{"three problems", errors.New("a\nb\nc\n"), "a (and 2 more problems)"},
		{"redacted", redact.Errorf("load registry: r.json: principal: invalid principal %q", redact.Value("s3cr3t")),
			"load registry: r.json: principal: invalid principal <redacted>"},
		{"long", errors.New(long), strings.Repeat("é", 254) + "..."},
		{"long, with more", errors.New(long + "\nb"), strings.Repeat("é", 244) + "... (and 1 more problem)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := oneLine(tt.err)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(got) > maxMessage || !utf8.ValidString(got) {
				t.Errorf("got %d bytes (valid UTF-8: %v), want at most %d", len(got), utf8.ValidString(got), maxMessage)
			}
		})
	}
}
