package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/inventory/inventorytest"
	"github.com/google/go-cmp/cmp"
)

// layouts are inventories that stress where the chunked parse may cut:
// things that span lines, anchors, comments, and what follows the actors.
var layouts = []string{
	// Ordinary.
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a: {}\n  agt-b:\n    subjects: [iam:role/x]\n  agt-c: {disabled: true}\n",
	// actors first, comments at column 1 and blank lines inside.
	"actors:   # the actors\n# agents\n  agt-a: {ttl_hours: 1}\n\n# more\n  agt-b: {ttl_hours: 2}\nversion: 1\n",
	// A quoted scalar whose second line looks like an actor.
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a: {description: \"foo\n  agt-b: bar\"}\n  agt-c: {}\n",
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a:\n    description: 'foo\n  agt-b: bar'\n  agt-c: {}\n",
	// A flow collection over several lines.
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a: {subjects: [a,\n  agt-b, c]}\n  agt-c: {}\n",
	// A block scalar, and a plain scalar over several lines.
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a:\n    description: |\n      line\n      agt-b: x\n  agt-c:\n    description: one\n      two\n",
	// Anchors used across actors, and in the tail.
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a: &a {subjects: [iam:role/x]}\n  agt-b: *a\nx-again: *a\n",
	"version: 1\nx-d: &d {ttl_hours: 3}\nactors:\n  agt-a: *d\n  agt-b: *d\n",
	// Anchors redefined, and aliased in the actors or after them: an alias
	// after the actors stands for the actors' anchor, not the older one.
	"version: 1\nactors:\n  agt-a: &d {ttl_hours: 3}\n  agt-b: &d {ttl_hours: 4}\n  agt-c: *d\n",
	"x-t: &t 3\nactors:\n  agt-a: {ttl_hours: &t 5}\n  agt-b: {}\ndefaults: {agt: {ttl_hours: *t}}\nversion: 1\n",
	"x-v: &v 1\nactors:\n  agt-a: {ttl_hours: 1, x-v: &v 2}\n  agt-b: {ttl_hours: 1}\nversion: *v\n",
	"x-v: &v 1\nactors:\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\nversion: *v\n",
	"version: 1\nx-t: &t 3\nactors:\n  agt-a: {ttl_hours: *t}\n  agt-b: {ttl_hours: 1}\n",
	// What follows the actors: more keys, a sequence, a second document.
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\nx-tail: [1]\ndefaults: {}\n",
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n- item\n",
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n---\nversion: 1\n",
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n...\n",
	// Indentation mistakes.
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1}\n agt-b: {ttl_hours: 1}\n  agt-c: {ttl_hours: 1}\n",
	"version: 1\nactors:\n    agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n",
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1}\n\tagt-b: {ttl_hours: 1}\n",
	"version: 1\nactors:\n  agt-a:\n  ttl_hours: 1\n  agt-b: {ttl_hours: 1}\n",
	// Errors in different parts, duplicates across parts, claims across parts.
	"version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a: {subjects: [iam:agt-c]}\n  agt-b: {ttl_hours: 0}\n  agt-a: {}\n  agt-c: {bogus: 1}\n",
	// Directives, a flow mapping at the top, a quoted actors key.
	"%YAML 1.2\n---\nversion: 1\nactors:\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n",
	"{version: 1,\nactors:\n  agt-a: {ttl_hours: 1},\n  agt-b: {ttl_hours: 1}\n}\n",
	"version: 1\n\"actors\":\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n",
	"version: 1\nactors: &all\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n",
	"version: 1\nactors: !!map\n  agt-a: {ttl_hours: 1}\n  agt-b: {ttl_hours: 1}\n",
	// Line breaks yaml.v3 counts and planChunks does not.
	"version: 1\r\nactors:\r\n  agt-a: {ttl_hours: 1}\r\n  agt-b: {ttl_hours: 1}\r\n",
	"version: 1\nactors:\n  agt-a: {ttl_hours: 1, description: \"a\u2028b\"}\n  agt-b: {ttl_hours: x}\n",
	// Two actors: lines, a key missing its settings.
	"version: 1\nactors:\n  agt-a:\n  agt-b:\n",
}

// TestChunkedSameResult checks that cutting the actors into parts gives
// exactly what parsing the file as one document gives, inventory or errors.
func TestChunkedSameResult(t *testing.T) {
	inputs := append([]string(nil), layouts...)
	for _, name := range []string{"../examples/ops-warden/inventory.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(data))
	}
	inputs = append(inputs, string(inventorytest.Large(300)))
	for i, in := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkChunked(t, []byte(in))
		})
	}
}

// checkChunked checks that parsing data in parts of each of the sizes
// gives what parsing it as one document gives, inventory or errors.
func checkChunked(t *testing.T, data []byte, sizes ...int) {
	t.Helper()
	if len(sizes) == 0 {
		sizes = []int{1, 7, 64}
	}
	whole, wholeErr := parse("inventory.yaml", data, 0)
	for _, size := range sizes {
		parts, partsErr := parse("inventory.yaml", data, size)
		if fmt.Sprint(wholeErr) != fmt.Sprint(partsErr) {
			t.Fatalf("chunk size %d: got errors\n%v\nwant\n%v", size, partsErr, wholeErr)
		}
		if diff := cmp.Diff(whole, parts); diff != "" {
			t.Fatalf("chunk size %d: inventory (-whole +parts):\n%s", size, diff)
		}
	}
}

// TestChunkedIsUsed checks that an ordinary large inventory is in fact
// parsed in parts, and where the parts are cut.
func TestChunkedIsUsed(t *testing.T) {
	data := inventorytest.Large(5000)
	pl := planChunks(data, 16<<10)
	if pl == nil {
		t.Fatal("got no plan for an ordinary inventory")
	}
	if pl.count != 5000 || pl.indent != 2 || len(pl.chunks) < 5 {
		t.Errorf("got %d actor lines, indent %d, %d parts; want 5000, 2, at least 5", pl.count, pl.indent, len(pl.chunks))
	}
	for _, c := range pl.chunks[1:] {
		if !strings.HasPrefix(string(data[c.start:]), "  a") {
			t.Errorf("part at line %d starts with %q, want an actor name", c.line, data[c.start:c.start+10])
		}
		if got := 1 + strings.Count(string(data[:c.start]), "\n"); got != c.line {
			t.Errorf("part at byte %d: got line %d, want %d", c.start, c.line, got)
		}
	}
	p := newParser("inventory.yaml", data)
	inv, ok := p.parseChunks(pl)
	if !ok || len(p.errs) > 0 {
		t.Fatalf("got ok %v, errors %v; want the chunked parse to succeed", ok, p.errs)
	}
	if got := len(inv.Actors) + len(inv.Disabled); got != 5000 {
		t.Errorf("got %d actors, want 5000", got)
	}
	if planChunks(data[:1000], 16<<10) != nil {
		t.Error("got a plan for a small inventory, want none")
	}
}

// FuzzChunked checks, on any input, that the chunked parse gives what the
// one-document parse gives.
func FuzzChunked(f *testing.F) {
	for _, l := range layouts {
		f.Add([]byte(l))
	}
	if data, err := os.ReadFile(filepath.Join("..", "examples", "ops-warden", "inventory.yaml")); err == nil {
		f.Add(data)
	}
	f.Add(inventorytest.Large(20))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		checkChunked(t, data)
	})
}

// A piece is the parts of an inventory that FuzzChunkedVsWhole puts
// around filler actors: head before "actors:", a and b among the actors,
// tail after them.
type piece struct {
	head, a, b, tail string
}

// pieces are the cases where the chunked parse once disagreed with the
// one-document parse, and others of the same kind.
var pieces = []piece{
	// An anchor redefined in the actors and aliased after them: every
	// actor that takes its TTL from defaults gets the actors' 5, not 3.
	{"x-t: &t 3\n", "  agt-a: {ttl_hours: &t 5}\n", "  agt-b: {}\n", "defaults: {agt: {ttl_hours: *t}}\nversion: 1\n"},
	// version: *v is 2, not 1.
	{"x-v: &v 1\n", "  agt-a: {ttl_hours: 1, x-v: &v 2}\n", "", "version: *v\n"},
	// The same, with the anchor on a key.
	{"x-k: &k version\n", "  agt-a: {ttl_hours: 1, x-k: [&k x-other]}\n", "", "*k : 1\n"},
	// An alias after the actors of an anchor they do not redefine.
	{"x-v: &v 1\n", "", "", "version: *v\n"},
	// Anchors across parts, and from before the actors.
	{"version: 1\n", "  agt-a: &s {ttl_hours: 2}\n", "  agt-b: *s\n", ""},
	{"version: 1\nx-s: &s [iam:role/x]\n", "  agt-a: {ttl_hours: 1, subjects: *s}\n", "", ""},
	// Errors in parts, duplicates and claims across parts.
	{"version: 1\n", "  agt-a: {ttl_hours: 0, subjects: [agt-b]}\n", "  agt-a: {}\n  agt-b: {ttl_hours: 1}\n", ""},
	// Keys compared as values, across parts; YAML 1.2 that yaml.v3 reads
	// otherwise.
	{"version: 1\n", "  true: {ttl_hours: 1}\n  1: {}\n", "  True: {}\n  \"1\": {}\n", ""},
	{"%YAML 1.2\n---\nversion: 1\n", "  agt-a: {ttl_hours: 1, description: \"it\\'s\"}\n", "", ""},
	// What the fragments can break: an unclosed flow, a deeper indentation.
	{"version: 1\n", "  agt-a: {ttl_hours: 1,\n", "", ""},
	{"version: 1\n", "    agt-a: {ttl_hours: 1}\n", "", ""},
}

// build makes an inventory of the piece with n filler actors, a among
// them after the first third and b after the second.
func (pc piece) build(n int) []byte { return pc.buildPadded(n, "") }

// buildLarge makes an inventory of the piece that Parse cuts in parts:
// over 256 KiB, most of it comments, which cost the parser little.
func (pc piece) buildLarge() []byte {
	return pc.buildPadded(2500, "  # "+strings.Repeat("padding ", 14))
}

func (pc piece) buildPadded(n int, pad string) []byte {
	var b strings.Builder
	b.WriteString(pc.head)
	b.WriteString("actors:\n")
	for i := range n {
		switch i {
		case n / 3:
			b.WriteString(pc.a)
		case 2 * n / 3:
			b.WriteString(pc.b)
		}
		fmt.Fprintf(&b, "  agt-fill-%d: {ttl_hours: 1}%s\n", i, pad)
	}
	b.WriteString(pc.tail)
	return []byte(b.String())
}

// TestChunkedVsWholeLarge checks the pieces at the size where Parse cuts
// a file: over 256 KiB, in parts of 128 KiB.
func TestChunkedVsWholeLarge(t *testing.T) {
	for i, pc := range pieces {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			data := pc.buildLarge()
			// A file with a directive is never cut.
			if planChunks(data, chunkSize) == nil && !strings.HasPrefix(pc.head, "%") {
				t.Fatalf("got no plan for %d bytes; the test would not cut the file", len(data))
			}
			whole, wholeErr := parse("inventory.yaml", data, 0)
			parts, partsErr := Parse("inventory.yaml", data)
			if fmt.Sprint(wholeErr) != fmt.Sprint(partsErr) {
				t.Fatalf("got errors\n%v\nwant\n%v", partsErr, wholeErr)
			}
			if diff := cmp.Diff(whole, parts); diff != "" {
				t.Fatalf("inventory (-whole +parts):\n%s", diff)
			}
		})
	}
}

// FuzzChunkedVsWhole checks that Parse gives the same result, inventory
// or errors with their positions, whether it cuts the actors into parts
// or parses the file as one document. A fuzz input is small and a small
// file is not cut, so the fuzzed fragments are set among filler actors
// (piece.build), and the file is cut in parts of a quarter of its size,
// as Parse cuts files of 256 KiB and more, and at every actor. With fill
// 255 the file is as large as Parse's own cut needs (over 256 KiB), and
// cut where Parse cuts it.
func FuzzChunkedVsWhole(f *testing.F) {
	for _, pc := range pieces {
		f.Add(pc.head, pc.a, pc.b, pc.tail, uint8(30))
	}
	f.Add(pieces[0].head, pieces[0].a, pieces[0].b, pieces[0].tail, uint8(255))
	for _, l := range layouts {
		if head, rest, ok := strings.Cut(l, "actors:\n"); ok {
			f.Add(head, rest, "", "", uint8(10))
		}
	}
	f.Fuzz(func(t *testing.T, head, a, b, tail string, fill uint8) {
		if len(head)+len(a)+len(b)+len(tail) > 16<<10 {
			return
		}
		if fill == 255 {
			checkChunked(t, piece{head, a, b, tail}.buildLarge(), chunkSize)
			return
		}
		data := piece{head, a, b, tail}.build(8 + int(fill%64))
		checkChunked(t, data, 1, len(data)/4)
	})
}
