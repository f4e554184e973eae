package drift

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coulomb/flex-auth/internal/termsafe"
)

// A Format is an output format of a report.
type Format string

// The report formats.
const (
	Text     Format = "text"
	JSON     Format = "json"
	Markdown Format = "markdown"
	GitHub   Format = "github"
)

// Formats lists the formats in the order the help shows them.
var Formats = []Format{Text, JSON, Markdown, GitHub}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown format %q: want text, json, markdown or github", s)
}

// GitHub's size limits for what a report may be posted as.
const (
	// MaxCommentBytes: a pull-request comment body holds at most 65,536
	// characters; a byte count is never below the character count.
	MaxCommentBytes = 65536
	// MaxSummaryBytes: a job's step summary holds at most 1 MiB.
	MaxSummaryBytes = 1 << 20
	// maxAnnotations: GitHub shows at most 10 error annotations per step.
	maxAnnotations = 10
)

// Render writes the report in format f. summary, if not nil, receives the
// Markdown report for GitHub's step summary (format github only).
func (r *Report) Render(w io.Writer, f Format, summary io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch f {
	case JSON:
		if err := r.writeJSON(bw); err != nil {
			return err
		}
	case Markdown:
		bw.WriteString(r.Markdown(MaxCommentBytes))
	case GitHub:
		r.writeGitHub(bw)
		if summary != nil {
			if _, err := io.WriteString(summary, r.Markdown(MaxSummaryBytes)); err != nil {
				return fmt.Errorf("write step summary: %w", err)
			}
		}
	default:
		r.writeText(bw)
	}
	return bw.Flush()
}

// Summary returns the report's one-line verdict.
func (r *Report) Summary() string {
	if r.InSync() {
		return fmt.Sprintf("in sync: ACTUAL %s matches EXPECTED %s (%s, %s)",
			r.Actual.Source, r.Expected.Source, r.Expected.ContentDigest, plural(len(r.Expected.Snapshot.Actors), "actor"))
	}
	return fmt.Sprintf("drift: ACTUAL %s does not match EXPECTED %s: %s", r.Actual.Source, r.Expected.Source, r.counts())
}

// counts says how much drifted: "1 added, 2 changed, 1 finding".
func (r *Report) counts() string {
	var add, remove, change int
	for _, c := range r.Changes {
		switch c.Op {
		case OpAdd:
			add++
		case OpRemove:
			remove++
		default:
			change++
		}
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{add, "added"}, {remove, "removed"}, {change, "changed"}} {
		if p.n > 0 {
			parts = append(parts, strconv.Itoa(p.n)+" "+p.what)
		}
	}
	if n := len(r.Findings); n > 0 {
		parts = append(parts, plural(n, "finding"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func (r *Report) findingLines() []string {
	lines := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		lines[i] = "! " + f.Label(r.FormattingOnly()) + ": " + f.Message
	}
	return lines
}

// writeText writes the verdict, the findings, the change list and the
// unified diff.
func (r *Report) writeText(w *bufio.Writer) {
	line(w, r.Summary())
	if r.InSync() {
		return
	}
	for _, l := range r.findingLines() {
		line(w, l)
	}
	for _, c := range r.Changes {
		line(w, c.String())
	}
	if r.Diff != "" {
		w.WriteString("\n" + termsafe.Text(r.Diff))
	}
}

// line writes s as one line for a terminal or a CI log: a character the
// terminal would act on, a newline among them, is escaped (termsafe).
// Sources name what the operator named, and the diff shows a file's
// lines: either may hold an ESC sequence or a CR.
func line(w *bufio.Writer, s string) {
	w.WriteString(termsafe.Line(s))
	w.WriteByte('\n')
}

// The JSON report, format_version 1. Members beyond the contract's are
// optional: kind, actors and content_digest (only when it differs from
// digest) on each side, and findings.
type jsonReport struct {
	FormatVersion int           `json:"format_version"`
	InSync        bool          `json:"in_sync"`
	Expected      jsonSide      `json:"expected"`
	Actual        jsonSide      `json:"actual"`
	Changes       []jsonChange  `json:"changes"`
	Findings      []jsonFinding `json:"findings"`
	Diff          string        `json:"diff"`
}

type jsonSide struct {
	Source        string `json:"source"`
	Kind          string `json:"kind"`
	Digest        string `json:"digest"`
	ContentDigest string `json:"content_digest,omitempty"`
	Actors        int    `json:"actors"`
}

type jsonChange struct {
	Op     Op     `json:"op"`
	Path   string `json:"path"`
	Before any    `json:"before,omitempty"`
	After  any    `json:"after,omitempty"`
}

type jsonFinding struct {
	Kind    FindingKind `json:"kind"`
	Side    string      `json:"side"`
	Line    int         `json:"line,omitempty"`
	Message string      `json:"message"`
}

func newJSONSide(s *Side) jsonSide {
	js := jsonSide{Source: s.Source, Kind: s.Kind.String(), Digest: s.Snapshot.Digest, Actors: len(s.Snapshot.Actors)}
	if !s.DigestMatches() {
		js.ContentDigest = s.ContentDigest
	}
	return js
}

func (r *Report) writeJSON(w io.Writer) error {
	out := jsonReport{
		FormatVersion: 1,
		InSync:        r.InSync(),
		Expected:      newJSONSide(r.Expected),
		Actual:        newJSONSide(r.Actual),
		Changes:       make([]jsonChange, len(r.Changes)),
		Findings:      make([]jsonFinding, len(r.Findings)),
		Diff:          r.Diff,
	}
	for i, c := range r.Changes {
		out.Changes[i] = jsonChange{Op: c.Op, Path: c.Path(), Before: c.Before, After: c.After}
	}
	for i, f := range r.Findings {
		out.Findings[i] = jsonFinding(f)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := w.Write(escapeJSON(buf.Bytes()))
	return err
}

// escapeJSON writes as \u escapes, in encoded JSON, the characters that a
// terminal would act on and encoding/json leaves as they are (DEL, the C1
// controls, the bidirectional controls): the JSON means the same, and
// prints safely.
func escapeJSON(data []byte) []byte {
	var out []byte
	done := 0
	for i := 0; i < len(data); {
		if data[i] < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if termsafe.Escaped(r) {
			out = append(out, data[done:i]...)
			out = fmt.Appendf(out, `\u%04x`, r)
			done = i + size
		}
		i += size
	}
	if out == nil {
		return data
	}
	return append(out, data[done:]...)
}

// fixHint says how to bring ACTUAL in line, for people reading a report;
// in Markdown when md is set.
func (r *Report) fixHint(md bool) string {
	switch r.Actual.Kind {
	case File:
		cmd := shellQuote("flex-auth", "drift", r.Expected.Source, r.Actual.Source, "--write")
		if md {
			cmd = code(cmd)
		}
		return "To fix, rewrite ACTUAL from EXPECTED: " + cmd + ", then commit the result."
	case Runtime:
		return "To fix, deploy EXPECTED's snapshot to the service and reload it (SIGHUP or --watch), then run drift again."
	case Publication:
		cmd := "flex-auth publish --registry SNAPSHOT --policy PACKAGE --sign-key KEY " + r.Actual.Source
		if md {
			cmd = code(cmd)
		}
		return "To fix, publish EXPECTED's snapshot with its policy package: " + cmd + ", then run drift again."
	}
	return "ACTUAL is an inventory, owned by ops-warden: update it, or EXPECTED, so that they agree."
}

// shellQuote joins words into a command line a shell reads back the same.
func shellQuote(words ...string) string {
	out := make([]string, len(words))
	for i, w := range words {
		safe := w != ""
		for _, c := range w {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@%+=,", c)) {
				safe = false
				break
			}
		}
		if safe {
			out[i] = w
		} else {
			out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// where names ACTUAL for an annotation: "here" for the annotated file.
func (r *Report) where() string {
	if r.Actual.IsFile() {
		return "here"
	}
	return "in ACTUAL " + r.Actual.Source
}

// annotation says what one change means for the ACTUAL file.
func (r *Report) annotation(c Change) (title, msg string) {
	title = "Registry drift: " + c.Name()
	exp := "EXPECTED " + r.Expected.Source
	switch c.Op {
	case OpAdd:
		msg = fmt.Sprintf("%s is in %s but missing %s", c.Name(), exp, r.where())
	case OpRemove:
		msg = fmt.Sprintf("%s is %s but not in %s", c.Name(), r.where(), exp)
	default:
		msg = fmt.Sprintf("%s is %s %s, %s in %s", c.Name(), FormatValue(c.Before), r.where(), FormatValue(c.After), exp)
	}
	return title, msg
}

// writeGitHub writes workflow commands: error annotations at the ACTUAL
// file's lines, the verdict and change list, and the diff in a group.
func (r *Report) writeGitHub(w *bufio.Writer) {
	if r.InSync() {
		line(w, r.Summary())
		return
	}
	var pos positions = topOnly{}
	switch r.Actual.Kind {
	case File:
		pos = snapshotPositions(r.Actual.Text)
	case Inventory:
		pos = inventoryPositions(r.Actual.inventory)
	}
	type note struct {
		line       int
		title, msg string
	}
	var notes []note
	for _, f := range r.Findings {
		line := f.Line
		if f.Side != "actual" {
			line = 1 // about EXPECTED: shown at the top of ACTUAL
		}
		notes = append(notes, note{line, "Registry drift: " + f.Label(r.FormattingOnly()), f.Message})
	}
	for _, c := range r.Changes {
		title, msg := r.annotation(c)
		notes = append(notes, note{pos.line(c), title, msg})
	}
	for i, n := range notes {
		if i == maxAnnotations {
			w.WriteString("::notice title=Registry drift::" + escapeData(fmt.Sprintf("%d more drift findings are not annotated; the log below and the job summary list them all", len(notes)-maxAnnotations)) + "\n")
			break
		}
		props := "title=" + escapeProperty(n.title)
		if r.Actual.IsFile() {
			props = "file=" + escapeProperty(r.Actual.Source) + ",line=" + strconv.Itoa(max(n.line, 1)) + "," + props
		}
		w.WriteString("::error " + props + "::" + escapeData(n.msg) + "\n")
	}
	line(w, r.Summary())
	for _, l := range r.findingLines() {
		line(w, l)
	}
	for _, c := range r.Changes {
		line(w, c.String())
	}
	line(w, r.fixHint(false))
	if r.Diff != "" {
		w.WriteString("::group::Unified diff: ACTUAL " + escapeData(r.Actual.Source) + " -> EXPECTED " + escapeData(r.Expected.Source) + "\n")
		w.WriteString(termsafe.Text(r.Diff))
		w.WriteString("::endgroup::\n")
	}
}

// escapeData makes s one workflow command message: the characters a log
// viewer or terminal would act on, CR and LF among them, are escaped
// (termsafe.Line), so that no value can end the command or start another,
// and % is escaped as the runner's toolkit escapes it.
func escapeData(s string) string {
	return strings.ReplaceAll(termsafe.Line(s), "%", "%25")
}

// escapeProperty escapes a workflow command property value: as data, and
// also : and , which separate properties.
func escapeProperty(s string) string {
	return propertyEscaper.Replace(termsafe.Line(s))
}

var propertyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", ",", "%2C")

// Markdown returns the report as GitHub-flavoured Markdown of at most limit
// bytes: a verdict, a table of the two sides, the findings, a table of the
// changes and the diff in a fenced diff block. What does not fit is cut,
// change rows first down to half the room, then the diff at a line, each
// with a note saying so.
func (r *Report) Markdown(limit int) string {
	diff := termsafe.Text(r.Diff)
	var head strings.Builder
	if r.InSync() {
		fmt.Fprintf(&head, "### ✅ Registry in sync: %s matches %s\n\n", code(r.Actual.Source), code(r.Expected.Source))
	} else {
		fmt.Fprintf(&head, "### ❌ Registry drift: %s does not match %s\n\n", code(r.Actual.Source), code(r.Expected.Source))
	}
	head.WriteString("| | EXPECTED (what should be) | ACTUAL (what is) |\n| --- | --- | --- |\n")
	fmt.Fprintf(&head, "| source | %s (%s) | %s (%s) |\n", cell(code(r.Expected.Source)), r.Expected.Kind, cell(code(r.Actual.Source)), r.Actual.Kind)
	fmt.Fprintf(&head, "| digest | %s | %s |\n", digestCell(r.Expected), digestCell(r.Actual))
	fmt.Fprintf(&head, "| actors | %d | %d |\n", len(r.Expected.Snapshot.Actors), len(r.Actual.Snapshot.Actors))
	fmt.Fprintf(&head, "| policy package | %s | %s |\n", code(r.Expected.Snapshot.PolicyPackage), code(r.Actual.Snapshot.PolicyPackage))
	if r.InSync() {
		return cutBytes(head.String(), limit)
	}
	head.WriteString("\n**" + r.counts() + "**\n")
	if len(r.Findings) > 0 {
		head.WriteString("\n")
		for _, f := range r.Findings {
			head.WriteString("- **" + f.Label(r.FormattingOnly()) + "**: " + mdText(f.Message) + "\n")
		}
	}

	rows := make([]string, len(r.Changes))
	rowBytes := 0
	for i, c := range r.Changes {
		var sign string
		switch c.Op {
		case OpAdd:
			sign = "+"
		case OpRemove:
			sign = "-"
		default:
			sign = "~"
		}
		rows[i] = "| " + sign + " | " + cell(code(c.Name())) + " | " + cell(valueCell(c.Before)) + " | " + cell(valueCell(c.After)) + " |\n"
		rowBytes += len(rows[i])
	}
	const tableHead = "\n| | changed | ACTUAL (before) | EXPECTED (after) |\n| --- | --- | --- | --- |\n"
	hint := "\n" + r.fixHint(true) + "\n"

	fence := fenceFor(diff)
	diffHead, diffTail := "\n"+fence+"diff\n", fence+"\n"
	diffLines := strings.SplitAfter(diff, "\n")
	if n := len(diffLines); n > 0 && diffLines[n-1] == "" {
		diffLines = diffLines[:n-1]
	}

	size := head.Len() + len(hint) + rowBytes
	if len(rows) > 0 {
		size += len(tableHead)
	}
	if diff != "" {
		size += len(diffHead) + len(diff) + len(diffTail)
	}
	if size <= limit {
		var b strings.Builder
		b.WriteString(head.String())
		if len(rows) > 0 {
			b.WriteString(tableHead)
			b.WriteString(strings.Join(rows, ""))
		}
		b.WriteString(hint)
		if diff != "" {
			b.WriteString(diffHead + diff + diffTail)
		}
		return b.String()
	}

	// Too big: share the room left after the fixed parts and the notes.
	rowsNote := func(left int) string {
		return fmt.Sprintf("\n_%d more changes were cut to fit GitHub's limit of %d characters; the text or JSON format lists them all._\n", left, limit)
	}
	diffNote := func(shown int) string {
		return fmt.Sprintf("\n_The diff was cut to fit GitHub's limit of %d characters: %d of %d lines shown. Run %s for all of it._\n",
			limit, shown, len(diffLines), code(shellQuote("flex-auth", "drift", r.Expected.Source, r.Actual.Source)))
	}
	room := limit - head.Len() - len(hint) - len(tableHead) - len(rowsNote(len(rows))) - len(diffHead) - len(diffTail) - len(diffNote(len(diffLines)))
	if room < 0 {
		return cutBytes(head.String()+hint, limit)
	}
	rowRoom := room
	if diff != "" {
		rowRoom = max(room/2, room-len(diff))
	}
	var b strings.Builder
	b.WriteString(head.String())
	used := 0
	if len(rows) > 0 {
		b.WriteString(tableHead)
		n := 0
		for n < len(rows) && used+len(rows[n]) <= rowRoom {
			used += len(rows[n])
			n++
		}
		b.WriteString(strings.Join(rows[:n], ""))
		if n < len(rows) {
			b.WriteString(rowsNote(len(rows) - n))
		}
	}
	b.WriteString(hint)
	if diff != "" {
		diffRoom := room - used
		shown, size := 0, 0
		for shown < len(diffLines) && size+len(diffLines[shown]) <= diffRoom {
			size += len(diffLines[shown])
			shown++
		}
		b.WriteString(diffHead + strings.Join(diffLines[:shown], "") + diffTail)
		if shown < len(diffLines) {
			b.WriteString(diffNote(shown))
		}
	}
	return cutBytes(b.String(), limit)
}

// cutBytes cuts s to at most n bytes at a rune boundary; only reached with
// absurdly long source names.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// code formats s as a Markdown code span, fenced by more backticks than s
// contains in a row, with the characters a terminal would act on escaped
// (termsafe.Line): the Markdown is also read raw, in a terminal or a log.
func code(s string) string {
	s = termsafe.Line(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// fenceFor returns a code fence longer than any backtick run in s.
func fenceFor(s string) string {
	return strings.Repeat("`", max(3, longestRun(s, '`')+1))
}

func longestRun(s string, c byte) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// cell makes text safe inside a table cell: a | would end the cell, a
// newline the row.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// mdText escapes the characters that would turn plain text into markup,
// after those a terminal would act on (termsafe.Line).
func mdText(s string) string {
	return mdEscaper.Replace(termsafe.Line(s))
}

var mdEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "`", "\\`", "<", "&lt;", "[", `\[`)

func digestCell(s *Side) string {
	if s.DigestMatches() {
		return code(s.Snapshot.Digest)
	}
	return code(s.Snapshot.Digest) + " (content: " + code(s.ContentDigest) + ")"
}

func valueCell(v any) string {
	if v == nil {
		return ""
	}
	return code(FormatValue(v))
}
