// Package udifftest checks unified diffs in tests: it applies one to the
// old text, as patch would, so that a test can see that it gives the new
// text, and asks GNU diff -u for its diff of the same texts.
package udifftest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Apply applies a unified diff to text and returns the result. It fails
// the test unless every context and deleted line is where the diff says,
// and every hunk header gives the right line numbers and counts.
func Apply(t testing.TB, text, diff string) string {
	t.Helper()
	if diff == "" {
		return text
	}
	src := strings.SplitAfter(text, "\n")
	if src[len(src)-1] == "" {
		src = src[:len(src)-1]
	}
	lines := strings.SplitAfter(diff, "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("diff does not end with a newline: %q", lines[len(lines)-1])
	}
	lines = lines[:len(lines)-1]
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		t.Fatalf("diff header: got %q", lines[:min(2, len(lines))])
	}
	var out []string
	pos := 0 // next line of src
	for k := 2; k < len(lines); {
		h := lines[k]
		f := strings.Fields(h)
		if len(f) != 4 || f[0] != "@@" || f[3] != "@@" || !strings.HasPrefix(f[1], "-") || !strings.HasPrefix(f[2], "+") {
			t.Fatalf("bad hunk header %q", h)
		}
		a0, an := hunkRange(t, h, f[1][1:])
		b0, bn := hunkRange(t, h, f[2][1:])
		// An empty range names the line before it.
		start := a0 - 1
		if an == 0 {
			start = a0
		}
		if start < pos || start > len(src) {
			t.Fatalf("hunk %q starts at line %d, after line %d of %d", h, start+1, pos, len(src))
		}
		out = append(out, src[pos:start]...)
		pos = start
		if newStart := len(out) + 1; bn > 0 && b0 != newStart || bn == 0 && b0 != newStart-1 {
			t.Fatalf("hunk %q: the new text's range starts at %d, want %d", h, b0, newStart)
		}
		gotA, gotB := 0, 0
		for k++; k < len(lines) && !strings.HasPrefix(lines[k], "@@"); k++ {
			l := lines[k]
			body := l[1:]
			if k+1 < len(lines) && lines[k+1] == "\\ No newline at end of file\n" {
				body = strings.TrimSuffix(body, "\n")
				k++
			}
			switch l[0] {
			case ' ', '-':
				if pos >= len(src) || src[pos] != body {
					t.Fatalf("hunk %q: line %d: got %q in the text, %q in the diff", h, pos+1, at(src, pos), body)
				}
				if l[0] == ' ' {
					out = append(out, body)
					gotB++
				}
				pos++
				gotA++
			case '+':
				out = append(out, body)
				gotB++
			default:
				t.Fatalf("bad diff line %q", l)
			}
		}
		if gotA != an || gotB != bn {
			t.Fatalf("hunk %q: got %d old and %d new lines, the header says %d and %d", h, gotA, gotB, an, bn)
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, "")
}

func at(src []string, k int) string {
	if k < len(src) {
		return src[k]
	}
	return "(end of text)"
}

// hunkRange parses "l,n", or "l" for one line.
func hunkRange(t testing.TB, h, s string) (start, n int) {
	t.Helper()
	a, b, ok := strings.Cut(s, ",")
	start, err := strconv.Atoi(a)
	n = 1
	if err == nil && ok {
		n, err = strconv.Atoi(b)
	}
	if err != nil || start < 0 || n < 0 {
		t.Fatalf("hunk %q: bad range %q", h, s)
	}
	return start, n
}

// GNU returns GNU diff -u's diff of a and b, headed with the given
// labels, "" when they are the same. It skips the test when there is no
// diff on the PATH.
func GNU(t testing.TB, a, b []byte, labelA, labelB string) string {
	t.Helper()
	gnu, err := exec.LookPath("diff")
	if err != nil {
		t.Skip("no diff on PATH")
	}
	dir := t.TempDir()
	fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(fa, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gnu, "-u", "--label", labelA, "--label", labelB, fa, fb).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("diff -u: %v", err)
	}
	return string(out)
}
