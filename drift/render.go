package drift

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/coulomb/flex-auth/internal/render"
	"github.com/coulomb/flex-auth/internal/termsafe"
)

// A Format is an output format of a report.
type Format = render.Format

// The report formats.
const (
	Text     = render.Text
	JSON     = render.JSON
	Markdown = render.Markdown
	GitHub   = render.GitHub
)

// Formats lists the formats in the order the help shows them.
var Formats = render.Formats

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) { return render.ParseFormat(s) }

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

// A Section is a report of its own that a drift report carries after the
// comparison, in every format: the impact of EXPECTED on recorded
// decisions (replay.Report), when drift is given some.
type Section interface {
	// Name is the section's member in the JSON report ("impact"), and
	// Title its heading in the text report.
	Name() string
	Title() string
	// TextReport is the section for a terminal, escaped.
	TextReport() string
	// Markdown is the section in at most limit bytes.
	Markdown(limit int) string
	// JSONValue is the section's value in the JSON report.
	JSONValue() any
	// WriteGitHub writes the section's workflow commands.
	WriteGitHub(w io.Writer) error
	// Notable reports whether the section is worth a pull-request comment
	// on its own, when ACTUAL is in sync.
	Notable() bool
}

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
		for _, s := range r.Sections {
			if err := s.WriteGitHub(bw); err != nil {
				return err
			}
		}
		if summary != nil {
			if _, err := io.WriteString(summary, r.Markdown(MaxSummaryBytes)); err != nil {
				return fmt.Errorf("write step summary: %w", err)
			}
		}
	default:
		r.writeText(bw)
		for _, s := range r.Sections {
			bw.WriteString("\n" + s.Title() + "\n" + s.TextReport())
		}
	}
	return bw.Flush()
}

// Notable reports whether the report is worth a pull-request comment:
// ACTUAL drifted, or a section has something to say.
func (r *Report) Notable() bool {
	if !r.InSync() {
		return true
	}
	for _, s := range r.Sections {
		if s.Notable() {
			return true
		}
	}
	return false
}

// Summary returns the report's one-line verdict.
func (r *Report) Summary() string {
	if r.InSync() {
		policy := ""
		if r.policyCompared() {
			policy = ", policy " + r.Policy.String()
		}
		return fmt.Sprintf("in sync: ACTUAL %s matches EXPECTED %s (%s, %s%s)",
			r.Actual.Source, r.Expected.Source, r.Expected.ContentDigest, render.Plural(len(r.Expected.Snapshot.Actors), "actor"), policy)
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
		parts = append(parts, render.Plural(n, "finding"))
	}
	return strings.Join(parts, ", ")
}

func (r *Report) findingLines() []string {
	lines := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		lines[i] = "! " + f.Label(r.FormattingOnly()) + ": " + f.Message
	}
	return lines
}

// writeText writes the verdict, the findings, the notes, the change list
// and the unified diff.
func (r *Report) writeText(w *bufio.Writer) {
	line(w, r.Summary())
	for _, l := range r.findingLines() {
		line(w, l)
	}
	for _, n := range r.Notes {
		line(w, "note: "+n)
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
// optional: kind, actors, content_digest (only when it differs from
// digest) and policy (only when known) on each side, findings, and notes
// (only when there are some).
type jsonReport struct {
	FormatVersion int           `json:"format_version"`
	InSync        bool          `json:"in_sync"`
	Expected      jsonSide      `json:"expected"`
	Actual        jsonSide      `json:"actual"`
	Changes       []jsonChange  `json:"changes"`
	Findings      []jsonFinding `json:"findings"`
	Notes         []string      `json:"notes,omitempty"`
	Diff          string        `json:"diff"`
	// Then a member per section, by its name.
}

type jsonSide struct {
	Source        string      `json:"source"`
	Kind          string      `json:"kind"`
	Digest        string      `json:"digest"`
	ContentDigest string      `json:"content_digest,omitempty"`
	Actors        int         `json:"actors"`
	Policy        *jsonPolicy `json:"policy,omitempty"`
}

// jsonPolicy is the policy that goes with a side: for EXPECTED the
// checked-in package when one is given (with its file), else the one it
// serves.
type jsonPolicy struct {
	Package string `json:"package"`
	Digest  string `json:"digest"`
	File    string `json:"file,omitempty"`
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

func newJSONSide(s *Side, p *Policy) jsonSide {
	js := jsonSide{Source: s.Source, Kind: s.Kind.String(), Digest: s.Snapshot.Digest, Actors: len(s.Snapshot.Actors)}
	if !s.DigestMatches() {
		js.ContentDigest = s.ContentDigest
	}
	if p != nil {
		js.Policy = &jsonPolicy{Package: p.Package, Digest: p.Digest, File: p.File}
	}
	return js
}

func (r *Report) writeJSON(w io.Writer) error {
	out := jsonReport{
		FormatVersion: 1,
		InSync:        r.InSync(),
		Expected:      newJSONSide(r.Expected, r.expectedPolicy()),
		Actual:        newJSONSide(r.Actual, r.Actual.Policy),
		Changes:       make([]jsonChange, len(r.Changes)),
		Findings:      make([]jsonFinding, len(r.Findings)),
		Notes:         r.Notes,
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
	if len(r.Sections) > 0 {
		// After the report's members, one per section.
		buf.Truncate(bytes.LastIndexByte(buf.Bytes(), '}'))
		buf.Truncate(len(bytes.TrimRight(buf.Bytes(), "\n")))
		for _, s := range r.Sections {
			fmt.Fprintf(&buf, ",\n  %q: ", s.Name())
			senc := json.NewEncoder(&buf)
			senc.SetEscapeHTML(false)
			senc.SetIndent("  ", "  ")
			if err := senc.Encode(s.JSONValue()); err != nil {
				return err
			}
			buf.Truncate(len(bytes.TrimRight(buf.Bytes(), "\n")))
		}
		buf.WriteString("\n}\n")
	}
	_, err := w.Write(render.EscapeJSON(buf.Bytes()))
	return err
}

// fixHint says how to bring ACTUAL in line, for people reading a report;
// in Markdown when md is set.
func (r *Report) fixHint(md bool) string {
	if r.registryInSync() {
		return r.policyHint(md)
	}
	switch r.Actual.Kind {
	case File:
		cmd := shellQuote("flex-auth", "drift", r.Expected.Source, r.Actual.Source, "--write")
		return "To fix, rewrite ACTUAL from EXPECTED: " + codeIf(md, cmd) + ", then commit the result."
	case Runtime:
		if r.policyDrifted("actual") {
			return "To fix, deploy EXPECTED's snapshot and the checked-in policy package " + codeIf(md, r.Policy.File) + " to the service and reload it (SIGHUP or --watch), then run drift again."
		}
		return "To fix, deploy EXPECTED's snapshot to the service and reload it (SIGHUP or --watch), then run drift again."
	case Publication:
		pkg := "PACKAGE"
		if r.Policy != nil {
			pkg = shellQuote(r.Policy.File)
		}
		cmd := "flex-auth publish --registry SNAPSHOT --policy " + pkg + " --sign-key KEY " + r.Actual.Source
		return "To fix, publish EXPECTED's snapshot with its policy package: " + codeIf(md, cmd) + ", then run drift again."
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
		r.writeNotices(w)
		line(w, r.Summary())
		for _, n := range r.Notes {
			line(w, "note: "+n)
		}
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
		title := "Registry drift: " + f.Label(r.FormattingOnly())
		if f.Kind == PolicyDrift {
			title = "Policy drift"
		}
		notes = append(notes, note{line, title, f.Message})
	}
	for _, c := range r.Changes {
		title, msg := r.annotation(c)
		notes = append(notes, note{pos.line(c), title, msg})
	}
	for i, n := range notes {
		if i == maxAnnotations {
			w.WriteString("::notice title=Registry drift::" + render.WorkflowData(fmt.Sprintf("%d more drift findings are not annotated; the log below and the job summary list them all", len(notes)-maxAnnotations)) + "\n")
			break
		}
		props := "title=" + render.WorkflowProperty(n.title)
		if r.Actual.IsFile() {
			props = "file=" + render.WorkflowProperty(r.Actual.Source) + ",line=" + strconv.Itoa(max(n.line, 1)) + "," + props
		}
		w.WriteString("::error " + props + "::" + render.WorkflowData(n.msg) + "\n")
	}
	r.writeNotices(w)
	line(w, r.Summary())
	for _, l := range r.findingLines() {
		line(w, l)
	}
	for _, n := range r.Notes {
		line(w, "note: "+n)
	}
	for _, c := range r.Changes {
		line(w, c.String())
	}
	line(w, r.fixHint(false))
	if r.Diff != "" {
		w.WriteString("::group::Unified diff: ACTUAL " + render.WorkflowData(r.Actual.Source) + " -> EXPECTED " + render.WorkflowData(r.Expected.Source) + "\n")
		w.WriteString(termsafe.Text(r.Diff))
		w.WriteString("::endgroup::\n")
	}
}

// writeNotices writes a notice per note: what was not compared.
func (r *Report) writeNotices(w *bufio.Writer) {
	for _, n := range r.Notes {
		w.WriteString("::notice title=Not compared::" + render.WorkflowData(n) + "\n")
	}
}

// Markdown returns the report as GitHub-flavoured Markdown of at most limit
// bytes: a verdict, a table of the two sides, the findings, a table of the
// changes and the diff in a fenced diff block, then the sections. What
// does not fit is cut, change rows first down to half the room, then the
// diff at a line, each with a note saying so; the sections have at most
// half the room.
func (r *Report) Markdown(limit int) string {
	if len(r.Sections) == 0 {
		return r.comparisonMarkdown(limit)
	}
	// The sections take at most half the room, shared; the comparison
	// the rest.
	var tail strings.Builder
	for _, sec := range r.Sections {
		tail.WriteString("\n" + sec.Markdown(limit/2/len(r.Sections)-1))
	}
	return r.comparisonMarkdown(limit-tail.Len()) + tail.String()
}

// comparisonMarkdown is Markdown without the sections.
func (r *Report) comparisonMarkdown(limit int) string {
	diff := termsafe.Text(r.Diff)
	var head strings.Builder
	switch {
	case r.InSync() && r.policyCompared():
		fmt.Fprintf(&head, "### ✅ Registry and policy in sync: %s matches %s\n\n", render.Code(r.Actual.Source), render.Code(r.Expected.Source))
	case r.InSync():
		fmt.Fprintf(&head, "### ✅ Registry in sync: %s matches %s\n\n", render.Code(r.Actual.Source), render.Code(r.Expected.Source))
	case r.registryInSync():
		fmt.Fprintf(&head, "### ❌ Policy drift: %s does not match %s\n\n", render.Code(r.Actual.Source), render.Code(r.Expected.Source))
	default:
		fmt.Fprintf(&head, "### ❌ Registry drift: %s does not match %s\n\n", render.Code(r.Actual.Source), render.Code(r.Expected.Source))
	}
	head.WriteString("| | EXPECTED (what should be) | ACTUAL (what is) |\n| --- | --- | --- |\n")
	fmt.Fprintf(&head, "| source | %s (%s) | %s (%s) |\n", render.Cell(render.Code(r.Expected.Source)), r.Expected.Kind, render.Cell(render.Code(r.Actual.Source)), r.Actual.Kind)
	fmt.Fprintf(&head, "| digest | %s | %s |\n", digestCell(r.Expected), digestCell(r.Actual))
	fmt.Fprintf(&head, "| actors | %d | %d |\n", len(r.Expected.Snapshot.Actors), len(r.Actual.Snapshot.Actors))
	fmt.Fprintf(&head, "| policy package | %s | %s |\n", render.Code(r.Expected.Snapshot.PolicyPackage), render.Code(r.Actual.Snapshot.PolicyPackage))
	if e, a := r.expectedPolicy(), r.Actual.Policy; e != nil || a != nil {
		fmt.Fprintf(&head, "| policy digest | %s | %s |\n", render.Cell(policyCell(e)), render.Cell(policyCell(a)))
	}
	for _, n := range r.Notes {
		head.WriteString("\n**Note**: " + render.Plain(n) + "\n")
	}
	if r.InSync() {
		return render.Cut(head.String(), limit)
	}
	head.WriteString("\n**" + r.counts() + "**\n")
	if len(r.Findings) > 0 {
		head.WriteString("\n")
		for _, f := range r.Findings {
			head.WriteString("- **" + f.Label(r.FormattingOnly()) + "**: " + render.Plain(f.Message) + "\n")
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
		rows[i] = "| " + sign + " | " + render.Cell(render.Code(c.Name())) + " | " + render.Cell(valueCell(c.Before)) + " | " + render.Cell(valueCell(c.After)) + " |\n"
		rowBytes += len(rows[i])
	}
	const tableHead = "\n| | changed | ACTUAL (before) | EXPECTED (after) |\n| --- | --- | --- | --- |\n"
	hint := "\n" + r.fixHint(true) + "\n"

	fence := render.Fence(diff)
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
			limit, shown, len(diffLines), render.Code(shellQuote("flex-auth", "drift", r.Expected.Source, r.Actual.Source)))
	}
	room := limit - head.Len() - len(hint) - len(tableHead) - len(rowsNote(len(rows))) - len(diffHead) - len(diffTail) - len(diffNote(len(diffLines)))
	if room < 0 {
		return render.Cut(head.String()+hint, limit)
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
	return render.Cut(b.String(), limit)
}

func digestCell(s *Side) string {
	if s.DigestMatches() {
		return render.Code(s.Snapshot.Digest)
	}
	return render.Code(s.Snapshot.Digest) + " (content: " + render.Code(s.ContentDigest) + ")"
}

func valueCell(v any) string {
	if v == nil {
		return ""
	}
	return render.Code(FormatValue(v))
}
