package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlCharactersEscaped gives commands files and names holding
// terminal escapes (ESC, BEL, CR, a C1 CSI, a bidirectional override):
// what they print on stderr, and serve's operational log in text and JSON,
// show them escaped, never as they are.
func TestControlCharactersEscaped(t *testing.T) {
	skipShort(t)
	t.Parallel()
	raw := []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"}
	clean := func(t *testing.T, what, text string) {
		t.Helper()
		for _, c := range raw {
			if strings.Contains(text, c) {
				t.Errorf("%s holds %q as it is:\n%q", what, c, text)
			}
		}
	}
	dir := t.TempDir()
	fixture := string(loadFixture(t).Canonical())
	// A member name with escapes: the JSON path load-registry prints
	// holds it.
	reg := filepath.Join(dir, "registry.json")
	if err := os.WriteFile(reg, []byte(strings.Replace(fixture, `"source"`, `"\u001b]0;owned\u0007\r\u009b31m\u202e": 1, "source"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, cleanEnv, "load-registry", "--file", reg)
	if code != 1 || !strings.Contains(stderr, `\x1b]0;owned\x07\r\u009b31m\u202e: unknown member`) {
		t.Errorf("load-registry: got exit %d, stderr %q; want 1 and the member name escaped", code, stderr)
	}
	clean(t, "load-registry's stderr", stderr)

	// A file name with escapes, in every command's errors and serve's log.
	evil := filepath.Join(dir, "reg\x1b[2J\u009b\u202e.json")
	if err := os.WriteFile(evil, []byte(fixture), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none\x07\r.json")
	for _, args := range [][]string{
		{"load-registry", "--file", missing},
		{"drift", "../examples/ops-warden/inventory.yaml", missing},
		{"policy", "test", "--policy", fixturePolicy, "--registry", missing},
		{"generate", missing + ".yaml"},
	} {
		code, _, stderr := runCLI(t, cleanEnv, args...)
		if code == 0 || !strings.Contains(stderr, `none\x07\r.json`) {
			t.Errorf("%s: got exit %d, stderr %q; want an error naming the file, escaped", args[0], code, stderr)
		}
		clean(t, args[0]+"'s stderr", stderr)
	}
	for _, format := range []string{"text", "json"} {
		s := newServer(t)
		s.Registry = evil
		s.start(t, s.serveArgs("--log-format", format)...)
		s.signal(sigterm)
		s.wait()
		if !strings.Contains(s.stderr.String(), `\u202e.json`) {
			t.Errorf("serve --log-format %s: stderr does not name the registry, escaped:\n%s", format, s.stderr)
		}
		clean(t, fmt.Sprintf("serve --log-format %s's stderr", format), s.stderr.String())
	}
}
