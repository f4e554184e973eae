package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/internal/suggest"
	"github.com/coulomb/flex-auth/internal/yamlerr"
	"github.com/coulomb/flex-auth/internal/yamljson"
	"github.com/coulomb/flex-auth/registry"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
	"gopkg.in/yaml.v3"
)

// maxErrors bounds how many problems one parse reports; past that, more
// lines help nobody.
const maxErrors = 100

// Front matter keys beyond the required ones. keyAllowAll is the key by
// which a package that allows every request says that it means to.
const (
	keyAllowAll      = "allow_all"
	keyData          = "data"
	keyResourceTypes = "resource_types"
)

// The info strings of the fenced blocks flex-auth reads.
const (
	rulesInfo = "rules"
	testsInfo = "tests"
)

// The keys each YAML mapping of a package may have, in the order a
// "missing key" error lists them.
var (
	frontMatterKeys = []string{"package", "version", "default"}
	// frontMatterOptional are the keys the front matter may have.
	frontMatterOptional = []string{keyData, keyResourceTypes, keyAllowAll}
	dataKinds           = []string{DataRegistry, DataEntities}
	decisionKeys        = []string{"effect", "reason"}
	ruleKeys            = []string{"reason", "effect", "when"}
	testKeys            = []string{"name", "request", "expect"}
	requestKeys         = []string{"subject", "action", "resource", "context"}
)

// A parser collects the problems of one package as it goes, so that a
// single run reports all of them.
type parser struct {
	file       string
	src        []byte
	lineStarts []int // byte offset of the start of each line
	errs       Errors
	tooMany    bool

	// The front matter's default and allow_all, for checkAllowAll.
	defaultLine  int
	allowAll     bool
	allowAllLine int // 0 when the key is absent
}

func newParser(file string, src []byte) *parser {
	p := &parser{file: file, src: src, lineStarts: []int{0}}
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			p.lineStarts = append(p.lineStarts, i+1)
		}
	}
	return p
}

// lineAt returns the 1-based line of the byte at offset off.
func (p *parser) lineAt(off int) int {
	return sort.Search(len(p.lineStarts), func(i int) bool { return p.lineStarts[i] > off })
}

// errorf reports a problem at line. Values read from the file are passed
// as redact.Value (or a redact.Text, or an error with a redacted form), so
// that the error's redacted form leaves them out.
func (p *parser) errorf(line int, item, format string, args ...any) {
	line = min(max(line, 1), len(p.lineStarts)) // YAML errors at the end of a block at the end of the file
	if len(p.errs) >= maxErrors {
		if !p.tooMany {
			p.tooMany = true
			p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: "too many errors", redacted: "too many errors"})
		}
		return
	}
	msg, redacted := redact.Sprintf(format, args...)
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Item: item, Msg: msg, redacted: redacted})
}

// A region maps the lines of a YAML document embedded in the Markdown file
// to the file's lines.
type region struct {
	base  int   // file line of the line before the document
	lines []int // file line of each document line, when not consecutive
}

func (r region) line(n int) int {
	switch {
	case n < 1:
		n = 1
	case len(r.lines) == 0:
	case n <= len(r.lines):
		return r.lines[n-1]
	default:
		return r.lines[len(r.lines)-1] + n - len(r.lines)
	}
	return r.base + n
}

// A block is one fenced code block the package is made of.
type block struct {
	info      string
	fenceLine int
	text      []byte
	lines     []int
}

func (p *parser) parse() *Package {
	pkg := &Package{file: p.file}
	bodyOff, ok := p.frontMatter(pkg)
	if !ok {
		return pkg
	}
	var rules, tests []block
	for _, b := range p.blocks(bodyOff) {
		if b.info == rulesInfo {
			rules = append(rules, b)
		} else {
			tests = append(tests, b)
		}
	}
	rulesOK := false
	switch len(rules) {
	case 0:
		p.errorf(p.lineAt(bodyOff), "", "no fenced code block with the info string %q: a package has exactly one", rulesInfo)
	default:
		for _, b := range rules[1:] {
			p.errorf(b.fenceLine, "", "second %q block (the first is at line %d): a package has exactly one", rulesInfo, rules[0].fenceLine)
		}
		errs := len(p.errs)
		p.parseRules(pkg, rules[0])
		rulesOK = len(p.errs) == errs && len(rules) == 1
	}
	pkg.reasons = reasonList(pkg)
	if len(p.errs) == 0 {
		p.checkAllowAll(pkg)
	}
	if len(p.errs) == 0 {
		pkg.chain = compileChain(pkg.model, pkg.rules)
	}
	for _, b := range tests {
		p.parseTests(pkg, b, rulesOK)
	}
	return pkg
}

// checkAllowAll refuses a package that allows every request (its default
// allows and no rule denies, or a rule that always matches allows before
// any rule denies) unless its front matter says allow_all: true; and
// allow_all: true on a package that can deny, so that the key never lies.
func (p *parser) checkAllowAll(pkg *Package) {
	denier, line, canDeny := redact.Pair("its default", "its default"), p.defaultLine, pkg.def.Effect == Deny
	var always *rule
	for _, r := range pkg.rules {
		if r.decision.Effect == Deny {
			denier, line, canDeny = redact.Pair(fmt.Sprintf("rule %q", r.decision.Reason), "a rule"), r.line, true
			break
		}
		if r.always {
			always, canDeny = r, false
			break
		}
	}
	switch {
	case canDeny && p.allowAll:
		p.errorf(p.allowAllLine, "", "front matter: %s: true, but the package can deny (%s, line %d): remove %s", keyAllowAll, denier, line, keyAllowAll)
	case canDeny || p.allowAll:
	case always != nil:
		p.errorf(always.line, ruleItem(always), "allows every request (its when is always true) before any rule denies: if that is meant, say so in the front matter with %s: true", keyAllowAll)
	default:
		p.errorf(p.defaultLine, "", "front matter: default: the default allows and no rule denies, so the package allows every request: if that is meant, say so with %s: true", keyAllowAll)
	}
}

// reasonList returns the sorted reasons a decision of pkg can carry.
func reasonList(pkg *Package) []string {
	reasons := []string{ReasonPolicyError}
	if pkg.def.Reason != "" {
		reasons = append(reasons, pkg.def.Reason)
	}
	for _, r := range pkg.rules {
		reasons = append(reasons, r.decision.Reason)
	}
	slices.Sort(reasons)
	return slices.Compact(reasons)
}

// frontMatter parses the YAML between the leading "---" lines into pkg and
// returns the offset where the Markdown body starts. It reports false when
// the rest of the file cannot be told apart from the front matter.
func (p *parser) frontMatter(pkg *Package) (int, bool) {
	first, off := nextLine(p.src, 0)
	first = bytes.TrimPrefix(first, []byte("\uFEFF")) // a byte order mark some editors write
	if !isDashes(first) {
		p.errorf(1, "", "missing front matter: the file must start with a line %q", "---")
		return 0, false
	}
	start := off
	for off < len(p.src) {
		line, next := nextLine(p.src, off)
		if isDashes(line) {
			p.frontMatterFields(pkg, p.src[start:off])
			return next, true
		}
		off = next
	}
	p.errorf(1, "", "front matter is not closed: no line %q after the first", "---")
	return 0, false
}

// nextLine returns the line starting at off, without its line ending, and
// the offset of the next line.
func nextLine(src []byte, off int) ([]byte, int) {
	end := bytes.IndexByte(src[off:], '\n')
	if end < 0 {
		return src[off:], len(src)
	}
	return src[off : off+end], off + end + 1
}

func isDashes(line []byte) bool {
	return string(bytes.TrimRight(line, " \t\r")) == "---"
}

func (p *parser) frontMatterFields(pkg *Package, data []byte) {
	const what = "front matter"
	r := region{base: 1}
	root, ok := p.yamlDoc(data, r, "", what)
	if !ok {
		return
	}
	if root == nil {
		p.errorf(2, "", "%s is empty: want %s", what, strings.Join(frontMatterKeys, ", "))
		return
	}
	fs, _ := p.fields(r, root, "", what, append(slices.Clip(frontMatterKeys), frontMatterOptional...), frontMatterKeys)
	if f, ok := fs["package"]; ok {
		if name, ok := p.str(r, f, "", what); ok {
			if err := registry.CheckPackageName(name); err != nil {
				p.errorf(r.line(f.val.Line), "", "%s: package: %v", what, err)
			} else {
				pkg.name = name
			}
		}
	}
	if f, ok := fs["version"]; ok {
		v := f.val
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
			p.errorf(r.line(v.Line), "", "%s: version must be an integer, got %s", what, describe(v))
		} else if v.Value != "1" {
			p.errorf(r.line(v.Line), "", "%s: unsupported version %s: 1 is the only version understood", what, redact.Value(v.Value))
		}
	}
	if f, ok := fs[keyAllowAll]; ok {
		v := f.val
		p.allowAllLine = r.line(f.key.Line)
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&p.allowAll) != nil {
			p.errorf(r.line(v.Line), "", "%s: %s must be true or false, got %s", what, keyAllowAll, describe(v))
		}
	}
	pkg.model = ModelRegistry
	if f, ok := fs[keyData]; ok {
		p.dataRef(r, f, pkg)
	}
	if f, ok := fs[keyResourceTypes]; ok {
		p.resourceTypes(r, f, pkg)
	}
	if f, ok := fs["default"]; ok {
		p.defaultLine = r.line(f.key.Line)
		if d, ok := p.decision(r, f.val, "", what+": default"); ok {
			if d.Reason == ReasonPolicyError {
				p.errorf(r.line(f.val.Line), "", "%s: default: reason %q is reserved for evaluation errors", what, ReasonPolicyError)
			} else {
				pkg.def = d
			}
		}
	}
}

// dataRef reads the front matter's data: {registry: FILE} or
// {entities: FILE}, a file in the package's directory. Entities make the
// package an AuthZEN model one.
func (p *parser) dataRef(r region, f field, pkg *Package) {
	const what = "front matter: " + keyData
	fs, ok := p.fields(r, f.val, "", what, dataKinds, nil)
	if !ok {
		return
	}
	if len(fs) != 1 {
		p.errorf(r.line(f.val.Line), "", "%s: name one file, as %s: FILE or %s: FILE", what, DataRegistry, DataEntities)
		return
	}
	for kind, kf := range fs {
		file, ok := p.str(r, kf, "", what)
		if !ok {
			return
		}
		if err := checkDataFile(file); err != nil {
			p.errorf(r.line(kf.val.Line), "", "%s: %s: %v", what, kind, err)
			return
		}
		pkg.data = DataRef{Kind: kind, File: file}
		if kind == DataEntities {
			pkg.model = ModelAuthZEN
		}
	}
}

// checkDataFile reports whether file names a file in the package's own
// directory: a package is one directory, watched as one. The error quotes
// the file name, a value of the package (redact.Value).
func checkDataFile(file string) error {
	switch {
	case file == "" || file == "." || file == ".." || strings.ContainsRune(file, 0):
		return redact.Errorf("%q is not a file name", redact.Value(file))
	case strings.ContainsAny(file, "/\\"):
		return redact.Errorf("%q: name a file in the package's directory, without a path", redact.Value(file))
	}
	return nil
}

// resourceTypes reads resource_types: the AuthZEN resource types an
// AuthZEN model package decides, by which a request without a package in
// its path finds it.
func (p *parser) resourceTypes(r region, f field, pkg *Package) {
	const what = "front matter: " + keyResourceTypes
	if pkg.model != ModelAuthZEN {
		p.errorf(r.line(f.key.Line), "", "%s: only a package whose data is an entities document declares resource types; a registry package decides resources of type %q", what, ActorType)
		return
	}
	if f.val.Kind != yaml.SequenceNode {
		p.errorf(r.line(f.val.Line), "", "%s must be a list of AuthZEN resource types, got %s", what, describe(f.val))
		return
	}
	types := []string{}
	for i, n := range f.val.Content {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || n.Value == "" {
			p.errorf(r.line(n.Line), "", "%s[%d] must be a non-empty string, got %s", what, i, describe(n))
			continue
		}
		if slices.Contains(types, n.Value) {
			p.errorf(r.line(n.Line), "", "%s: %q is listed twice", what, redact.Value(n.Value))
			continue
		}
		types = append(types, n.Value)
	}
	slices.Sort(types)
	pkg.types = types
}

// blocks returns the package's rules and tests blocks, in document order:
// the fenced code blocks whose language, the first word of the info string
// in CommonMark, is exactly rules or tests, wherever they are (in a list,
// a quote, or inside <details> with a blank line after the tag, where
// GitHub shows them when the reader expands it). Attributes after the
// word (`rules {.yaml}`, `rules title="x"`) are for renderers.
//
// What a reader would take for a rules or tests block that is not one is
// an error, never skipped: a language that says rules or tests in another
// form (Rules, rules{.cel}, {.rules}), and a fence line that Markdown reads
// as raw HTML, as it does the lines of <details> up to the first blank
// line, so that the reader sees the text when expanding the details and
// flex-auth would not read it. A fence inside an HTML comment, which no
// reader sees, and one inside another code block, an example, are text.
func (p *parser) blocks(bodyOff int) []block {
	body := p.src[bodyOff:]
	doc := goldmark.DefaultParser().Parse(text.NewReader(body))
	var blocks []block
	ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		if html, ok := n.(*ast.HTMLBlock); ok {
			p.htmlFences(html, body, bodyOff)
			return ast.WalkSkipChildren, nil
		}
		fcb, ok := n.(*ast.FencedCodeBlock)
		if !ok || fcb.Info == nil {
			return ast.WalkContinue, nil
		}
		fenceLine := p.lineAt(bodyOff + fcb.Info.Segment.Start)
		info := string(fcb.Language(body))
		if info != rulesInfo && info != testsInfo {
			if lang := blockLanguage(info); lang != "" {
				p.errorf(fenceLine, "", "fenced block with the info string %q: the first word of a %s block's info string must be exactly %q (attributes go after a space, as in %q); as written, flex-auth does not read this block",
					redact.Value(string(fcb.Info.Segment.Value(body))), lang, lang, lang+" {.yaml}")
			}
			return ast.WalkSkipChildren, nil
		}
		b := block{info: info, fenceLine: fenceLine}
		segs := fcb.Lines()
		for i := 0; i < segs.Len(); i++ {
			s := segs.At(i)
			b.lines = append(b.lines, p.lineAt(bodyOff+s.Start))
			b.text = append(b.text, s.Value(body)...)
			if len(b.text) > 0 && b.text[len(b.text)-1] != '\n' {
				b.text = append(b.text, '\n')
			}
		}
		blocks = append(blocks, b)
		return ast.WalkSkipChildren, nil
	})
	return blocks
}

// blockLanguage returns rules or tests when the language word of an info
// string reads as one of them to a person ("Rules", "rules{.cel}",
// "{.rules}", "TESTS,"), else "".
func blockLanguage(word string) string {
	w := strings.TrimLeft(word, "{.")
	if i := strings.IndexFunc(w, func(r rune) bool {
		return !(r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}); i >= 0 {
		w = w[:i]
	}
	for _, lang := range []string{rulesInfo, testsInfo} {
		if strings.EqualFold(w, lang) {
			return lang
		}
	}
	return ""
}

// htmlFences reports the lines of an HTML block that open a rules or tests
// fence: Markdown shows them as raw text, not as a code block.
func (p *parser) htmlFences(html *ast.HTMLBlock, body []byte, bodyOff int) {
	if html.HTMLBlockType == ast.HTMLBlockType2 {
		return // a comment: nobody sees it
	}
	lines := html.Lines()
	if lines.Len() == 0 {
		return
	}
	first := lines.At(0)
	tag := strings.TrimSpace(string(first.Value(body)))
	if len(tag) > 40 {
		tag = strings.ToValidUTF8(tag[:40], "") + "..."
	}
	for i := 0; i < lines.Len(); i++ {
		seg := lines.At(i)
		word, ok := fenceInfoWord(seg.Value(body))
		if !ok {
			continue
		}
		if lang := blockLanguage(word); lang != "" {
			p.errorf(p.lineAt(bodyOff+seg.Start), "", "a %q fence inside the HTML block that starts at line %d (%s) is raw text to Markdown, not a code block, and flex-auth does not read it: leave a blank line between the HTML and the fence (for <details>, after </summary>)",
				lang, p.lineAt(bodyOff+first.Start), redact.Value(tag))
		}
	}
}

// fenceInfoWord returns the first word of the info string of line when it
// opens a fenced code block: up to three spaces, three or more backticks
// or tildes, the info string.
func fenceInfoWord(line []byte) (string, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	indent := len(s) - len(strings.TrimLeft(s, " "))
	if indent > 3 {
		return "", false
	}
	s = s[indent:]
	if !strings.HasPrefix(s, "```") && !strings.HasPrefix(s, "~~~") {
		return "", false
	}
	s = strings.TrimLeft(s, s[:1])
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return "", false
	}
	return fields[0], true
}

func (p *parser) parseRules(pkg *Package, b block) {
	const what = "rules block"
	r := region{base: b.fenceLine, lines: b.lines}
	root, ok := p.yamlDoc(b.text, r, "", what)
	if !ok {
		return
	}
	if root == nil {
		p.errorf(b.fenceLine, "", "%s is empty: write [] for a package that always decides its default", what)
		return
	}
	if root.Kind != yaml.SequenceNode {
		p.errorf(r.line(root.Line), "", "%s must be a YAML list of rules, got %s", what, describe(root))
		return
	}
	type use struct {
		effect Effect
		line   int // 0 for the default
	}
	uses := map[string]use{}
	if pkg.def.Reason != "" {
		uses[pkg.def.Reason] = use{pkg.def.Effect, 0}
	}
	alwaysLine, alwaysReason, reported := 0, "", false
	for i, n := range root.Content {
		item := itemName("rule", i, n, "reason")
		line := r.line(n.Line)
		if alwaysLine != 0 && !reported {
			p.errorf(line, item, "unreachable: rule %q at line %d always matches", redact.Value(alwaysReason), alwaysLine)
			reported = true
		}
		fs, valid := p.fields(r, n, item, "", ruleKeys, ruleKeys)
		if fs == nil {
			continue
		}
		rl := &rule{line: line}
		d, ok := p.decisionFields(r, fs, item, "")
		rl.decision = d
		switch u, seen := uses[d.Reason]; {
		case !ok:
			valid = false
		case d.Reason == ReasonPolicyError:
			p.errorf(r.line(fs["reason"].val.Line), item, "reason %q is reserved for evaluation errors", ReasonPolicyError)
			valid = false
		case seen && u.effect != d.Effect:
			where := fmt.Sprintf("by the rule at line %d", u.line)
			if u.line == 0 {
				where = "by the default"
			}
			p.errorf(r.line(fs["effect"].val.Line), item, "reason %q is used with effect %s %s: a reason keeps one effect", redact.Value(d.Reason), u.effect, where)
			valid = false
		case !seen:
			uses[d.Reason] = use{d.Effect, line}
		}
		if f, ok := fs["when"]; ok {
			v := f.val
			if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!bool") {
				p.errorf(r.line(v.Line), item, "when must be a CEL expression string, got %s", describe(v))
				valid = false
			} else {
				rl.when = v.Value
				prog, checked, always, err := compile(pkg.model, v.Value)
				if err != nil {
					p.errorf(r.line(v.Line), item, "when: %v", err)
					valid = false
				}
				rl.prog, rl.checked, rl.always = prog, checked, always
				if always && alwaysLine == 0 {
					alwaysLine, alwaysReason = line, d.Reason
				}
			}
		}
		if valid {
			pkg.rules = append(pkg.rules, rl)
		}
	}
}

func (p *parser) parseTests(pkg *Package, b block, rulesOK bool) {
	const what = "tests block"
	r := region{base: b.fenceLine, lines: b.lines}
	root, ok := p.yamlDoc(b.text, r, "", what)
	if !ok || root == nil {
		return // an empty tests block has no tests
	}
	if root.Kind != yaml.SequenceNode {
		p.errorf(r.line(root.Line), "", "%s must be a YAML list of tests, got %s", what, describe(root))
		return
	}
	effects := map[string]Effect{}
	if pkg.def.Reason != "" {
		effects[pkg.def.Reason] = pkg.def.Effect
	}
	for _, rl := range pkg.rules {
		effects[rl.decision.Reason] = rl.decision.Effect
	}
	effects[ReasonPolicyError] = Deny
	seen := map[string]int{}
	for _, t := range pkg.tests {
		seen[t.name] = t.line
	}
	for i, n := range root.Content {
		item := itemName("test", i, n, "name")
		fs, valid := p.fields(r, n, item, "", testKeys, testKeys)
		if fs == nil {
			continue
		}
		tc := &testCase{line: r.line(n.Line)}
		if f, ok := fs["name"]; ok {
			name, ok := p.str(r, f, item, "")
			switch {
			case !ok:
				valid = false
			case name == "":
				p.errorf(r.line(f.val.Line), item, "name must not be empty")
				valid = false
			case seen[name] != 0:
				p.errorf(tc.line, item, "duplicate test name (the first is at line %d)", seen[name])
				valid = false
			default:
				tc.name = name
				seen[name] = tc.line
			}
		}
		if f, ok := fs["request"]; ok {
			var ok bool
			if p.accessForm(f.val, pkg.model) {
				tc.access, ok = p.access(r, f.val, item)
			} else {
				tc.req, ok = p.request(r, f.val, item)
			}
			valid = valid && ok
		}
		if f, ok := fs["expect"]; ok {
			d, ok := p.decision(r, f.val, item, "expect")
			tc.want = d
			e, known := effects[d.Reason]
			switch {
			case !ok:
				valid = false
			case !known && rulesOK:
				p.errorf(r.line(f.val.Line), item, "expect: no rule or default of this package has the reason %q", redact.Value(d.Reason))
				valid = false
			case known && e != d.Effect:
				p.errorf(r.line(f.val.Line), item, "expect: reason %q comes with effect %s, not %s", redact.Value(d.Reason), e, d.Effect)
				valid = false
			}
		}
		if valid {
			pkg.tests = append(pkg.tests, tc)
		}
	}
}

// itemName names the i-th list item n by its key field (`rule "reason"`),
// or by its position when the field is not a plain string (`rule 3`).
func itemName(kind string, i int, n *yaml.Node, key string) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := n.Content[j], n.Content[j+1]
			if k.Value == key && v.Kind == yaml.ScalarNode && v.Tag == "!!str" && v.Value != "" {
				return fmt.Sprintf("%s %q", kind, v.Value)
			}
		}
	}
	return fmt.Sprintf("%s %d", kind, i+1)
}

// accessForm reports whether a test's request n is written in AuthZEN's
// form (subject, action and resource are mappings), as every request of
// an AuthZEN model package is; a registry model package's test may use
// either form, the AuthZEN one to test what an AuthZEN request decides.
func (p *parser) accessForm(n *yaml.Node, m Model) bool {
	if m == ModelAuthZEN {
		return true
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == "subject" || k.Value == "resource" {
			return n.Content[i+1].Kind == yaml.MappingNode
		}
	}
	return false
}

// access parses a test's request in AuthZEN's form.
func (p *parser) access(r region, n *yaml.Node, item string) (*Access, bool) {
	const what = "request"
	fs, valid := p.fields(r, n, item, what, requestKeys, []string{"subject", "action", "resource"})
	if fs == nil {
		return nil, false
	}
	a := &Access{}
	if f, ok := fs["subject"]; ok {
		var eok bool
		a.Subject, eok = p.entity(r, f, item)
		valid = valid && eok
	}
	if f, ok := fs["resource"]; ok {
		var eok bool
		a.Resource, eok = p.entity(r, f, item)
		valid = valid && eok
	}
	if f, ok := fs["action"]; ok {
		what := what + ": action"
		afs, aok := p.fields(r, f.val, item, what, actionMembers, actionMembers[:1])
		valid = valid && aok
		if f, ok := afs["name"]; ok {
			a.Action.Name, aok = p.nonEmpty(r, f, item, what)
			valid = valid && aok
		}
		if f, ok := afs["properties"]; ok {
			a.Action.Properties, aok = p.properties(r, f, item, what)
			valid = valid && aok
		}
	}
	if f, ok := fs["context"]; ok {
		ctx, cok := p.properties(r, f, item, what)
		a.Context = ctx
		valid = valid && cok
	}
	return a, valid
}

// entity parses a test request's subject or resource in AuthZEN's form.
func (p *parser) entity(r region, f field, item string) (Entity, bool) {
	what := "request: " + f.key.Value
	fs, valid := p.fields(r, f.val, item, what, entityMembers, entityMembers[:2])
	var e Entity
	if f, ok := fs["type"]; ok {
		var ok bool
		e.Type, ok = p.nonEmpty(r, f, item, what)
		valid = valid && ok
	}
	if f, ok := fs["id"]; ok {
		var ok bool
		e.ID, ok = p.nonEmpty(r, f, item, what)
		valid = valid && ok
	}
	if f, ok := fs["properties"]; ok {
		var ok bool
		e.Properties, ok = p.properties(r, f, item, what)
		valid = valid && ok
	}
	return e, valid
}

// nonEmpty returns the value of f, a non-empty string.
func (p *parser) nonEmpty(r region, f field, item, what string) (string, bool) {
	s, ok := p.str(r, f, item, what)
	if ok && s == "" {
		p.errorf(r.line(f.val.Line), item, "%s: %s must not be empty", what, f.key.Value)
		ok = false
	}
	return s, ok
}

// properties returns the value of f, a mapping of JSON values: properties
// or a context.
func (p *parser) properties(r region, f field, item, what string) (map[string]any, bool) {
	if f.val.Kind != yaml.MappingNode {
		p.errorf(r.line(f.val.Line), item, "%s: %s must be a mapping, got %s", what, f.key.Value, describe(f.val))
		return nil, false
	}
	label := what + ": " + f.key.Value
	v, ok := p.value(r, f.val, item, redact.Pair(label, label))
	if !ok {
		return nil, false
	}
	return v.(map[string]any), true
}

func (p *parser) request(r region, n *yaml.Node, item string) (Request, bool) {
	const what = "request"
	fs, valid := p.fields(r, n, item, what, requestKeys, []string{"subject", "resource"})
	if fs == nil {
		return Request{}, false
	}
	var req Request
	for _, s := range []struct {
		key string
		dst *string
	}{{"subject", &req.Subject}, {"resource", &req.Resource}, {"action", &req.Action}} {
		if f, given := fs[s.key]; given {
			var ok bool
			*s.dst, ok = p.nonEmpty(r, f, item, what)
			valid = valid && ok
		}
	}
	if f, given := fs["context"]; given {
		var ok bool
		req.Context, ok = p.properties(r, f, item, what)
		valid = valid && ok
	}
	return req, valid
}

// value converts a YAML value to the Go value the same JSON would decode to
// on the HTTP path: int64, float64, string, bool, nil, []any,
// map[string]any. what names n, with the keys that lead to it, which its
// redacted form leaves out.
func (p *parser) value(r region, n *yaml.Node, item string, what redact.Text) (any, bool) {
	return yamljson.Value(n, what, func(at *yaml.Node, format string, args ...any) {
		p.errorf(r.line(at.Line), item, format, args...)
	})
}

// decision parses an {effect, reason} mapping.
func (p *parser) decision(r region, n *yaml.Node, item, what string) (Decision, bool) {
	fs, ok := p.fields(r, n, item, what, decisionKeys, decisionKeys)
	if fs == nil {
		return Decision{}, false
	}
	d, dok := p.decisionFields(r, fs, item, what)
	return d, ok && dok
}

func (p *parser) decisionFields(r region, fs map[string]field, item, what string) (Decision, bool) {
	var d Decision
	valid := true
	if f, ok := fs["effect"]; ok {
		if s, ok := p.str(r, f, item, what); ok {
			d.Effect = Effect(s)
			if d.Effect != Allow && d.Effect != Deny {
				p.errorf(r.line(f.val.Line), item, "%seffect must be %s or %s, got %q", prefix(what), Allow, Deny, redact.Value(s))
				valid = false
			}
		} else {
			valid = false
		}
	}
	if f, ok := fs["reason"]; ok {
		if s, ok := p.str(r, f, item, what); ok {
			d.Reason = s
			if !validReason(s) {
				p.errorf(r.line(f.val.Line), item, "%sinvalid reason %q: want ^[a-z][a-z0-9_]*$", prefix(what), redact.Value(s))
				valid = false
			}
		} else {
			valid = false
		}
	}
	return d, valid && d.Effect != "" && d.Reason != ""
}

// validReason reports whether s matches ^[a-z][a-z0-9_]*$.
func validReason(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func prefix(what string) string {
	if what == "" {
		return ""
	}
	return what + ": "
}

// A field is one key and its value in a YAML mapping.
type field struct{ key, val *yaml.Node }

// fields checks that n is a mapping whose keys are all known, none
// repeated, and the required ones present, and returns its fields by key.
func (p *parser) fields(r region, n *yaml.Node, item, what string, known, required []string) (map[string]field, bool) {
	if n.Kind != yaml.MappingNode {
		want := "a mapping"
		if what == "" {
			want = "a mapping with " + strings.Join(known, ", ")
		}
		p.errorf(r.line(n.Line), item, "%smust be %s, got %s", prefix(what), want, describe(n))
		return nil, false
	}
	fs := make(map[string]field, len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			p.errorf(r.line(k.Line), item, "%skeys must be strings, got %s", prefix(what), describe(k))
			ok = false
			continue
		}
		if first, dup := fs[k.Value]; dup {
			p.errorf(r.line(k.Line), item, "%sduplicate key %q (the first is at line %d)", prefix(what), redact.Value(k.Value), r.line(first.key.Line))
			ok = false
			continue
		}
		if !slices.Contains(known, k.Value) {
			hint := ""
			if s := suggest.Closest(k.Value, known); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(r.line(k.Line), item, "%sunknown key %q%s", prefix(what), redact.Value(k.Value), hint)
			ok = false
			continue
		}
		fs[k.Value] = field{k, v}
	}
	for _, k := range required {
		if _, given := fs[k]; !given {
			p.errorf(r.line(n.Line), item, "%smissing key %q", prefix(what), k)
			ok = false
		}
	}
	return fs, ok
}

// str returns the string value of f.
func (p *parser) str(r region, f field, item, what string) (string, bool) {
	if f.val.Kind != yaml.ScalarNode || f.val.Tag != "!!str" {
		p.errorf(r.line(f.val.Line), item, "%s%s must be a string, got %s", prefix(what), f.key.Value, describe(f.val))
		return "", false
	}
	return f.val.Value, true
}

// describe says what kind of YAML value n is, and which, for messages;
// its redacted form says only what kind.
func describe(n *yaml.Node) redact.Text { return yamljson.Describe(n) }

// yamlDoc parses data as a single YAML document and returns its root node,
// or nil for an empty document. Anchors and aliases are refused: a package
// is read by people, and aliases make its size unbounded.
func (p *parser) yamlDoc(data []byte, r region, item, what string) (root *yaml.Node, ok bool) {
	defer func() {
		if e := recover(); e != nil { // yaml.v3 has panicked on hostile input before
			p.errorf(r.line(1), item, "%s: invalid YAML: %v", what, redact.Value(e))
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		p.yamlError(r, err, item, what)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(r.line(extra.Line), item, "%s: more than one YAML document", what)
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(r, err, item, what)
		return nil, false
	}
	if n := yamljson.FindAlias(&doc); n != nil {
		p.errorf(r.line(n.Line), item, "%s: YAML anchors and aliases are not supported", what)
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

func (p *parser) yamlError(r region, err error, item, what string) {
	n, msg, ok := yamlerr.Line(err)
	if !ok {
		n = 1
	}
	p.errorf(r.line(n), item, "%s: invalid YAML: %s", what, redact.Value(msg))
}
