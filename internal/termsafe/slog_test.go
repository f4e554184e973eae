package termsafe

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	// What each handler writes for the escapes: the text handler quotes
	// a value holding a backslash, doubling it, and so does JSON.
	want := map[string][]string{
		"text": {`\x1b[2J`, `\x07`, `\u009b31m`, `\u202eevil`, "n=3"},
		"json": {`\x1b[2J`, `\x07`, `\u009b31m`, `\u202eevil`, `"n":3`},
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&buf, nil)
			}
			log := slog.New(Handler(h)).With("file", "reg\x1b[2J.json")
			log.Error("reload of \x07 failed",
				"err", errors.New("bad \x1b]0;title\x07 value\r"),
				"resource", "agt-\u009b31m",
				"files", []string{"a\rb"},
				"n", 3,
				slog.Group("g", "k", "\u202eevil"),
				"panic", struct{ S string }{"\x1b[0m"})
			out := buf.String()
			for _, c := range []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"} {
				if strings.Contains(out, c) {
					t.Errorf("log line holds %q: %s", c, out)
				}
			}
			for _, w := range want[format] {
				if !strings.Contains(out, w) {
					t.Errorf("log line lacks %s: %s", w, out)
				}
			}
		})
	}
}
