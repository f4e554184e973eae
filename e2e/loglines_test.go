package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// lineBreaks are the characters at which some common line-oriented reader
// ends a line, with other control characters a terminal acts on: Go's
// bufio.ScanLines (\n), Python's str.splitlines (\n \r \v \f U+001C
// U+001D U+001E U+0085 U+2028 U+2029), JavaScript (\n \r U+2028 U+2029),
// Unicode's mandatory breaks; ESC, DEL and the C1 control CSI.
var lineBreaks = []rune{'\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029, 0x1b, 0x7f, 0x9b}

// No value a client controls can split a decision log line, for any of
// those readers: each character, sent escaped and (where JSON allows it)
// raw, in every client string and in the context, gives one line per
// decision to Go, Python and Node.js.
func TestDecisionLogLinesCannotBeSplit(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	var values []string // what each request put in every client string
	for _, r := range lineBreaks {
		sendings := []string{fmt.Sprintf(`\u%04x`, r)}
		if r >= 0x7f {
			sendings = append(sendings, string(r)) // valid unescaped in JSON
		}
		for _, c := range sendings {
			body := `{"subject":"s` + c + `","action":"a` + c + `","resource":"agt-` + c + `",` +
				`"context":{"k` + c + `":"v` + c + `","list":["` + c + `",{"` + c + `":1}]}}`
			if r := s.do("POST", "/v1/check", "application/json", []byte(body)); r.Status != 200 {
				t.Fatalf("%s: got %d, want 200: %s", body, r.Status, r.Body)
			}
			values = append(values, string(r))
		}
	}
	data := readFile(t, s.Log)

	t.Run("go", func(t *testing.T) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		var n int
		for ; sc.Scan(); n++ {
			line := sc.Bytes()
			if i := bytes.IndexFunc(line, func(r rune) bool { return strings.ContainsRune(string(lineBreaks), r) }); i >= 0 {
				r, _ := utf8.DecodeRune(line[i:])
				t.Errorf("line %d has %q raw at byte %d: %s", n+1, r, i, line)
			}
			var got struct {
				Subject, Action, Resource string
				Context                   map[string]any
			}
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("line %d is not JSON: %v: %s", n+1, err, line)
			}
			if n >= len(values) {
				continue
			}
			c := values[n]
			list, _ := json.Marshal(got.Context["list"])
			if got.Subject != "s"+c || got.Action != "a"+c || got.Resource != "agt-"+c || got.Context["k"+c] != "v"+c ||
				string(list) != mustMarshal(t, []any{c, map[string]int{c: 1}}) {
				t.Errorf("line %d does not hold %q where it was sent: %s", n+1, c, line)
			}
		}
		if n != len(values) {
			t.Errorf("bufio.Scanner reads %d lines, want %d", n, len(values))
		}
	})

	// Each reader counts the lines as it splits them and parses each one.
	readers := []struct {
		name string
		cmd  []string
	}{
		{"python", []string{"python3", "-c", `import json, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8").splitlines()
for line in lines:
    json.loads(line)
print(len(lines))`, s.Log}},
		// A JavaScript regular expression in multiline mode: ^ and $ match
		// at every line terminator the language knows.
		{"node", []string{"node", "-e", `const text = require("fs").readFileSync(process.argv[1], "utf8");
const lines = text.match(/^.*$/gm).filter(l => l !== "");
lines.forEach(l => JSON.parse(l));
console.log(lines.length);`, s.Log}},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			if _, err := exec.LookPath(rd.cmd[0]); err != nil {
				t.Skipf("%s is not installed", rd.cmd[0])
			}
			out, err := exec.Command(rd.cmd[0], rd.cmd[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", rd.cmd[0], err, out)
			}
			if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || n != len(values) {
				t.Errorf("%s reads %s lines, want %d", rd.name, strings.TrimSpace(string(out)), len(values))
			}
		})
	}
}
