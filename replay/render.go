package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/coulomb/flex-auth/internal/render"
	"github.com/coulomb/flex-auth/internal/termsafe"
)

// Heading is the title of the report in Markdown: the section drift adds
// to its report when it is given recorded decisions.
const Heading = "Impact on recorded decisions"

// maxAnnotations: GitHub shows at most 10 warning annotations per step.
const maxAnnotations = 10

// Render writes the report in format f. summary, if not nil, receives the
// Markdown report for GitHub's step summary (format github only); limit
// bounds the Markdown (GitHub's comment and summary limits).
func (r *Report) Render(w io.Writer, f render.Format, summary io.Writer, limit int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch f {
	case render.JSON:
		if err := r.writeJSON(bw); err != nil {
			return err
		}
	case render.Markdown:
		bw.WriteString(r.Markdown(limit))
	case render.GitHub:
		r.writeGitHub(bw)
		if summary != nil {
			if _, err := io.WriteString(summary, r.Markdown(limit)+"\n"); err != nil {
				return fmt.Errorf("write step summary: %w", err)
			}
		}
	default:
		bw.WriteString(r.TextReport())
	}
	return bw.Flush()
}

// Summary says in one line what would change.
func (r *Report) Summary() string {
	if r.Changed() == 0 {
		return fmt.Sprintf("none of %s would change", render.Plural(r.Decisions, "recorded decision"))
	}
	return fmt.Sprintf("%d of %s would change: %d allow to deny, %d deny to allow, %d the same effect for another reason",
		r.Changed(), render.Plural(r.Decisions, "recorded decision"), r.Transitions[AllowToDeny], r.Transitions[DenyToAllow], r.Transitions[ReasonOnly])
}

// transitionLabel names a transition for people.
func transitionLabel(t Transition) string {
	switch t {
	case AllowToDeny:
		return "allow -> deny"
	case DenyToAllow:
		return "deny -> allow"
	}
	return "same effect, another reason"
}

// pairText describes what decided again.
func (r *Report) pairText() string {
	var ps []string
	for _, p := range r.Pairs {
		ps = append(ps, fmt.Sprintf("%s (policy %s, %s)", p.Package, p.PolicyDigest, p.dataText()))
	}
	return strings.Join(ps, "; ")
}

// TextReport returns the report as text for a terminal, escaped: the
// subjects and resources come from clients.
func (r *Report) TextReport() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replay: %s from %s, decided again under %s\n", render.Plural(r.Decisions, "decision"), strings.Join(r.Files, ", "), r.pairText())
	for _, p := range r.Recorded {
		fmt.Fprintf(&b, "recorded under %s policy %s, %s: %d\n", p.Package, p.PolicyDigest, p.dataText(), p.Count)
	}
	r.writeIncomplete(&b)
	fmt.Fprintf(&b, "%s\n", r.Summary())
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "\n%s: %s -> %s: %d\n", g.Actor, g.From, g.To, g.Count)
		for _, c := range g.Examples {
			fmt.Fprintf(&b, "  %s  %s  subject %s  action %s  (%s)\n", c.ID, c.Time, c.Subject, c.Action, c.At)
		}
		if more := g.Count - len(g.Examples); more > 0 {
			fmt.Fprintf(&b, "  and %d more\n", more)
		}
	}
	if r.Ungrouped > 0 {
		fmt.Fprintf(&b, "\n%d more changes, of actors past the first %d\n", r.Ungrouped, len(r.Groups))
	}
	return termsafe.Text(b.String())
}

// writeIncomplete says which decisions were not decided again.
func (r *Report) writeIncomplete(b *strings.Builder) {
	for _, s := range r.Skipped {
		fmt.Fprintf(b, "NOT DECIDED AGAIN: %s of package %s, for which no policy was given (the first at %s)\n", render.Plural(s.Count, "decision"), s.Package, s.First)
	}
	if r.Malformed > 0 {
		fmt.Fprintf(b, "NOT DECIDED AGAIN: %s that could not be read (the first at %s)\n", render.Plural(r.Malformed, "decision line"), r.FirstMalformed)
	}
}

// jsonReport is the JSON report: the Report with its format version and
// the number of changes.
type jsonReport struct {
	FormatVersion int `json:"format_version"`
	Changed       int `json:"changed"`
	*Report
	Skipped []jsonSkipped `json:"skipped"`
}

type jsonSkipped struct {
	Skipped
	First string `json:"first"`
}

func (r *Report) jsonValue() jsonReport {
	out := jsonReport{FormatVersion: 1, Changed: r.Changed(), Report: r, Skipped: []jsonSkipped{}}
	for _, s := range r.Skipped {
		out.Skipped = append(out.Skipped, jsonSkipped{s, s.First.String()})
	}
	if out.Report.Groups == nil {
		out.Report.Groups = []*Group{}
	}
	return out
}

// writeJSON writes the JSON report, with the characters a terminal would
// act on escaped (what clients sent is in it).
func (r *Report) writeJSON(w io.Writer) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.jsonValue()); err != nil {
		return err
	}
	_, err := w.Write(render.EscapeJSON(buf.Bytes()))
	return err
}

// Markdown returns the report as a Markdown section of at most limit
// bytes: a heading, the counts by transition, and a table per actor of
// the changed decisions, cut to fit.
func (r *Report) Markdown(limit int) string {
	var head strings.Builder
	mark := "✅"
	if r.Changed() > 0 || !r.Complete() {
		mark = "⚠️"
	}
	fmt.Fprintf(&head, "### %s %s: %s\n\n", mark, Heading, render.Plain(r.Summary()))
	fmt.Fprintf(&head, "Replayed %s from %s under ", render.Plural(r.Decisions, "decision"), joinCode(r.Files))
	for i, p := range r.Pairs {
		if i > 0 {
			head.WriteString("; ")
		}
		kind, digest := p.Data()
		fmt.Fprintf(&head, "%s (policy %s, %s %s)", render.Code(p.Package), render.Code(p.PolicyDigest), kind, render.Code(digest))
	}
	head.WriteString(".\n")
	var inc strings.Builder
	r.writeIncomplete(&inc)
	for _, l := range strings.Split(strings.TrimSpace(inc.String()), "\n") {
		if l != "" {
			head.WriteString("\n- **" + render.Plain(l) + "**\n")
		}
	}
	if r.Changed() == 0 {
		return render.Cut(head.String(), limit)
	}
	head.WriteString("\n| transition | decisions |\n| --- | ---: |\n")
	for _, t := range []Transition{AllowToDeny, DenyToAllow, ReasonOnly} {
		fmt.Fprintf(&head, "| %s | %d |\n", transitionLabel(t), r.Transitions[t])
	}
	var body strings.Builder
	const tableHead = "| decision | time | subject | action |\n| --- | --- | --- | --- |\n"
	cutNote := func(groups int) string {
		return fmt.Sprintf("\n_%d more groups of changes were cut to fit GitHub's limit of %d characters; the text or JSON format lists them all._\n", groups, limit)
	}
	room := limit - head.Len() - len(cutNote(len(r.Groups)))
	shown := 0
	for _, g := range r.Groups {
		var s strings.Builder
		fmt.Fprintf(&s, "\n#### %s: %s → %s (%d)\n\n%s", render.Code(g.Actor), render.Code(g.From.String()), render.Code(g.To.String()), g.Count, tableHead)
		for _, c := range g.Examples {
			fmt.Fprintf(&s, "| %s | %s | %s | %s |\n", render.Cell(render.Code(c.ID)), render.Cell(render.Code(c.Time)), render.Cell(render.Code(c.Subject)), render.Cell(render.Code(c.Action)))
		}
		if more := g.Count - len(g.Examples); more > 0 {
			fmt.Fprintf(&s, "\n_and %d more_\n", more)
		}
		if body.Len()+s.Len() > room {
			break
		}
		body.WriteString(s.String())
		shown++
	}
	out := head.String() + body.String()
	if shown < len(r.Groups) {
		out += cutNote(len(r.Groups) - shown)
	}
	if r.Ungrouped > 0 {
		out += fmt.Sprintf("\n_%d more changes, of actors past the first %d._\n", r.Ungrouped, len(r.Groups))
	}
	return render.Cut(out, limit)
}

func joinCode(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = render.Code(s)
	}
	return strings.Join(out, ", ")
}

// Name returns the report's member in a drift report's JSON: "impact".
func (r *Report) Name() string { return "impact" }

// Title returns the report's heading in a drift report.
func (r *Report) Title() string { return Heading }

// JSONValue returns the report as its JSON form has it.
func (r *Report) JSONValue() any { return r.jsonValue() }

// Notable reports whether something would change, or could not be
// decided again: worth a pull-request comment on its own.
func (r *Report) Notable() bool { return r.Changed() > 0 || !r.Complete() }

// WriteGitHub writes the report's workflow commands (format github).
func (r *Report) WriteGitHub(w io.Writer) error {
	bw := bufio.NewWriter(w)
	r.writeGitHub(bw)
	return bw.Flush()
}

// writeGitHub writes workflow commands: a warning annotation per group of
// changes (at most maxAnnotations), and the text report in a group.
func (r *Report) writeGitHub(w *bufio.Writer) {
	for i, g := range r.Groups {
		if i == maxAnnotations {
			break
		}
		fmt.Fprintf(w, "::warning title=%s::%s\n", render.WorkflowProperty("Recorded decisions would change: "+g.Actor),
			render.WorkflowData(fmt.Sprintf("%d recorded decisions for %s would go from %s to %s", g.Count, g.Actor, g.From, g.To)))
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "::error title=%s::%s\n", render.WorkflowProperty("Recorded decisions not decided again"),
			render.WorkflowData(fmt.Sprintf("%d decisions of package %s: no policy was given for it", s.Count, s.Package)))
	}
	w.WriteString("::group::" + render.WorkflowData(Heading+": "+r.Summary()) + "\n")
	for _, l := range strings.Split(strings.TrimRight(r.TextReport(), "\n"), "\n") {
		if strings.HasPrefix(l, "::") {
			l = " " + l // never a workflow command
		}
		w.WriteString(l + "\n")
	}
	w.WriteString("::endgroup::\n")
}
