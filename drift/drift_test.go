package drift

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/drift/udiff"
	"github.com/coulomb/flex-auth/drift/udiff/udifftest"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/registry"
)

func fixture(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("../examples/ops-warden/production_registry_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustSide(t testing.TB, source string, data []byte) *Side {
	t.Helper()
	s, err := ParseSnapshot(source, data)
	if err != nil {
		t.Fatalf("ParseSnapshot %s: %v", source, err)
	}
	return s
}

func actor(name string, ttl int, extra ...string) registry.Actor {
	return registry.Actor{Name: name, Type: registry.TypeOf(name), Principal: name, DefaultTTLHours: ttl, MaxTTLHours: ttl,
		Subjects: append([]string{name, registry.IAMSubject(name)}, extra...)}
}

func snapshotSide(t testing.TB, source, pkg string, actors ...registry.Actor) *Side {
	return mustSide(t, source, registry.New("ops-warden", pkg, actors).Canonical())
}

// TestCompareDirection checks the contract's direction: an add is in
// EXPECTED only, a remove in ACTUAL only, a change goes from ACTUAL's
// value to EXPECTED's.
func TestCompareDirection(t *testing.T) {
	pkg := registry.DefaultPolicyPackage
	e := snapshotSide(t, "e.json", pkg, actor("agt-keep", 24), actor("agt-new", 8), actor("agt-ttl", 12, "iam:role/x"))
	a := snapshotSide(t, "a.json", "ops-warden/old", actor("agt-keep", 24), actor("atm-old", 8), actor("agt-ttl", 24, "iam:role/y"))
	r := Compare(e, a)
	want := []struct {
		op            Op
		path          string
		before, after string
	}{
		{OpChange, "/policy_package", "ops-warden/old", pkg},
		{OpAdd, "/actors/agt-new", "", "agt-new (principal agt-new, ttl 8, max 8, subjects [agt-new, iam:agt-new])"},
		{OpChange, "/actors/agt-ttl/default_ttl_hours", "24", "12"},
		{OpChange, "/actors/agt-ttl/max_ttl_hours", "24", "12"},
		{OpChange, "/actors/agt-ttl/subjects", "[agt-ttl, iam:agt-ttl, iam:role/y]", "[agt-ttl, iam:agt-ttl, iam:role/x]"},
		{OpRemove, "/actors/atm-old", "atm-old (principal atm-old, ttl 8, max 8, subjects [atm-old, iam:atm-old])", ""},
	}
	if len(r.Changes) != len(want) {
		t.Fatalf("got %d changes %v, want %d", len(r.Changes), r.Changes, len(want))
	}
	for i, w := range want {
		c := r.Changes[i]
		if c.Op != w.op || c.Path() != w.path || FormatValue(c.Before) != w.before || FormatValue(c.After) != w.after {
			t.Errorf("change %d: got %s %s %q -> %q, want %s %s %q -> %q", i, c.Op, c.Path(), FormatValue(c.Before), FormatValue(c.After), w.op, w.path, w.before, w.after)
		}
	}
	if r.InSync() {
		t.Error("InSync() = true, want false")
	}
	if got := r.Changes[1].String(); got != "+ agt-new" {
		t.Errorf("add: got %q, want %q", got, "+ agt-new")
	}
	if got := r.Changes[5].String(); got != "- atm-old" {
		t.Errorf("remove: got %q, want %q", got, "- atm-old")
	}
}

// TestReorderIsNotAChange: actor and subject order in a file is not a
// content change, only a formatting finding.
func TestReorderIsNotAChange(t *testing.T) {
	s := registry.New("ops-warden", registry.DefaultPolicyPackage, []registry.Actor{actor("agt-a", 1), actor("agt-b", 2), actor("agt-c", 3)})
	var buf bytes.Buffer
	buf.WriteString(`{"schema":"flex-auth.registry/v1","digest":"` + s.Digest + `","source":"ops-warden","policy_package":"ops-warden/ssh-signing","actors":[`)
	for i := len(s.Actors) - 1; i >= 0; i-- {
		a := s.Actors[i]
		fmt.Fprintf(&buf, `{"subjects":["iam:%s","%s"],"name":"%s","type":"agt","principal":"%s","default_ttl_hours":%d,"max_ttl_hours":%d}`, a.Name, a.Name, a.Name, a.Principal, a.DefaultTTLHours, a.MaxTTLHours)
		if i > 0 {
			buf.WriteByte(',')
		}
	}
	buf.WriteString("]}")
	r := Compare(mustSide(t, "e.json", s.Canonical()), mustSide(t, "a.json", buf.Bytes()))
	if len(r.Changes) != 0 {
		t.Errorf("got changes %v, want none", r.Changes)
	}
	if len(r.Findings) != 1 || r.Findings[0].Kind != Formatting || !r.FormattingOnly() {
		t.Errorf("got findings %+v, want one formatting finding", r.Findings)
	}
	if r.InSync() {
		t.Error("InSync() = true, want false: the bytes are not canonical")
	}
}

// A file whose producer hashed its actors in the order it wrote them (the
// contract's wording taken literally) is reordered, not edited by hand.
func TestDigestOfDocumentAsWrittenIsNotAHandEdit(t *testing.T) {
	s := registry.New("ops-warden", registry.DefaultPolicyPackage, []registry.Actor{actor("agt-a", 1), actor("agt-b", 2)})
	doc := func(digest string) []byte {
		var buf bytes.Buffer
		buf.WriteString(`{"schema":"flex-auth.registry/v1",`)
		if digest != "" {
			buf.WriteString(`"digest":"` + digest + `",`)
		}
		buf.WriteString(`"source":"ops-warden","policy_package":"ops-warden/ssh-signing","actors":[`)
		for i := len(s.Actors) - 1; i >= 0; i-- {
			a := s.Actors[i]
			fmt.Fprintf(&buf, `{"name":"%s","type":"agt","principal":"%s","default_ttl_hours":%d,"max_ttl_hours":%d,"subjects":["%s","iam:%s"]}`, a.Name, a.Principal, a.DefaultTTLHours, a.MaxTTLHours, a.Name, a.Name)
			if i > 0 {
				buf.WriteByte(',')
			}
		}
		buf.WriteString("]}")
		return buf.Bytes()
	}
	content := jsontext.Value(doc(""))
	if err := content.Canonicalize(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	asWritten := "sha256:" + hex.EncodeToString(sum[:])
	if asWritten == s.Digest {
		t.Fatal("test is void: the written order hashes like the canonical one")
	}
	r := Compare(mustSide(t, "e.json", s.Canonical()), mustSide(t, "a.json", doc(asWritten)))
	if len(r.Changes) != 0 || !r.FormattingOnly() {
		t.Errorf("got changes %v and findings %+v, want formatting only", r.Changes, r.Findings)
	}
}

func TestExpectedEditedByHand(t *testing.T) {
	data := fixture(t)
	edited := bytes.Replace(data, []byte(`"max_ttl_hours": 2,`), []byte(`"max_ttl_hours": 3,`), 1)
	r := Compare(mustSide(t, "e.json", edited), mustSide(t, "a.json", data))
	if len(r.Findings) != 1 || r.Findings[0].Kind != EditedByHand || r.Findings[0].Side != "expected" {
		t.Fatalf("got findings %+v, want one edited_by_hand on expected", r.Findings)
	}
	// What --write would put in place carries the digest of its content.
	s, err := registry.Parse(r.Want)
	if err != nil {
		t.Fatalf("Want does not parse with a valid digest: %v", err)
	}
	if !bytes.Equal(s.Canonical(), r.Want) {
		t.Error("Want is not canonical")
	}
	if _, err := r.Write(); err == nil {
		t.Error("Write from a hand-edited EXPECTED: got no error, want one")
	}
}

// mutate returns a random variation of the fixture's registry.
func mutate(rng *rand.Rand, n int) *registry.Snapshot {
	var actors []registry.Actor
	for i := 0; i < n; i++ {
		if rng.IntN(8) == 0 {
			continue
		}
		name := fmt.Sprintf("agt-a%03d", i*3+rng.IntN(2))
		a := actor(name, 1+rng.IntN(3))
		if rng.IntN(5) == 0 {
			a.Subjects = append(a.Subjects, "iam:role/r"+strconv.Itoa(rng.IntN(3)))
		}
		if rng.IntN(6) == 0 {
			a.Principal = "p" + strconv.Itoa(rng.IntN(2))
		}
		actors = append(actors, a)
	}
	if len(actors) == 0 {
		actors = append(actors, actor("agt-only", 1))
	}
	pkg := registry.DefaultPolicyPackage
	if rng.IntN(4) == 0 {
		pkg = "ops-warden/other"
	}
	return registry.New("ops-warden", pkg, actors)
}

// tagForGNU prefixes every line of an actor block but its braces with the
// actor's name and a tab, the way the differ keeps actors apart, so that
// GNU diff can be asked for the same diff.
func tagForGNU(t testing.TB, data []byte) []byte {
	s, err := registry.ParseUnverified(data)
	if err != nil {
		t.Fatal(err)
	}
	txt := udiff.Split(data)
	blocks, ok := actorBlocks(txt, actorNames(s))
	if !ok {
		t.Fatal("not canonical")
	}
	var out bytes.Buffer
	k := 0
	for _, bl := range blocks {
		out.Write(txt.Span(k, bl.start))
		for k = bl.start; k < bl.end; k++ {
			if line := txt.Line(k); !isBrace(line) {
				out.WriteString(bl.name + "\t")
			}
			out.Write(txt.Line(k))
		}
	}
	out.Write(txt.Span(k, txt.Len()))
	return out.Bytes()
}

// untag removes the tags of tagForGNU from a diff.
func untag(diff string) string {
	lines := strings.SplitAfter(diff, "\n")
	for i, l := range lines {
		if k := strings.IndexByte(l, '\t'); k > 0 && (l[0] == ' ' || l[0] == '-' || l[0] == '+') && !strings.HasPrefix(l, "--- ") && !strings.HasPrefix(l, "+++ ") {
			lines[i] = l[:1] + l[k+1:]
		}
	}
	return strings.Join(lines, "")
}

// TestDiffMatchesGNU compares the unified diffs with GNU diff -u's, hunk
// for hunk, and checks that every diff applies to ACTUAL and gives
// EXPECTED. On the golden cases, diff -u of the plain files gives the
// same diff. drift never pairs one actor's lines with another's, which a
// line-minimal diff may do when an actor is removed next to an added one;
// on large and random registries, the oracle is diff -u of the files with
// each actor's lines tagged by its name, which makes GNU diff keep actors
// apart too; most of those diffs also equal plain diff -u's.
func TestDiffMatchesGNU(t *testing.T) {
	applies := func(t *testing.T, r *Report) {
		t.Helper()
		if got := udifftest.Apply(t, string(r.Actual.Text), r.Diff); got != string(r.Want) {
			t.Fatalf("the diff applied to ACTUAL does not give EXPECTED")
		}
	}
	for _, name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			r := caseReport(t, name)
			applies(t, r)
			if want := udifftest.GNU(t, r.Actual.Text, r.Want, r.Actual.Source, r.Expected.Source); r.Diff != want {
				t.Errorf("got diff:\n%s\nwant (GNU diff -u):\n%s", r.Diff, want)
			}
		})
	}
	tagged := func(t *testing.T, r *Report) (same bool) {
		t.Helper()
		applies(t, r)
		want := untag(udifftest.GNU(t, tagForGNU(t, r.Actual.Text), tagForGNU(t, r.Want), r.Actual.Source, r.Expected.Source))
		if r.Diff != want {
			t.Errorf("got diff:\n%s\nwant (GNU diff -u, actors tagged):\n%s", r.Diff, want)
		}
		return r.Diff == udifftest.GNU(t, r.Actual.Text, r.Want, r.Actual.Source, r.Expected.Source)
	}
	t.Run("large", func(t *testing.T) { tagged(t, largeReport(t)) })
	rng := rand.New(rand.NewPCG(1, 2))
	plain, n := 0, 300
	for i := 0; i < n; i++ {
		base := mutate(rng, 2+rng.IntN(30))
		e, a := drifted(rng, base), drifted(rng, base)
		t.Run("random-"+strconv.Itoa(i), func(t *testing.T) {
			if tagged(t, Compare(mustSide(t, "e.json", e.Canonical()), mustSide(t, "a.json", a.Canonical()))) {
				plain++
			}
		})
	}
	// Most random drifts have no removal next to an addition: for those
	// the plain diff -u is the same.
	if plain < n*8/10 {
		t.Errorf("only %d of %d random diffs equal plain diff -u's, want at least 80%%", plain, n)
	}
	t.Logf("%d of %d random diffs equal plain diff -u's", plain, n)
}

// drifted returns base with a few edits of the kinds drift meets: a
// member changed, a subject added, an actor added or removed, another
// policy package.
func drifted(rng *rand.Rand, base *registry.Snapshot) *registry.Snapshot {
	actors := make([]registry.Actor, len(base.Actors))
	for i, a := range base.Actors {
		a.Subjects = slices.Clone(a.Subjects)
		actors[i] = a
	}
	pkg := base.PolicyPackage
	for n := rng.IntN(4); n > 0; n-- {
		k := rng.IntN(len(actors))
		switch rng.IntN(6) {
		case 0:
			actors[k].MaxTTLHours += 1 + rng.IntN(3)
		case 1:
			actors[k].Principal = "p" + strconv.Itoa(rng.IntN(3))
		case 2:
			actors[k].Subjects = append(actors[k].Subjects, "iam:role/r"+strconv.Itoa(rng.IntN(3)))
		case 3:
			actors = append(actors, actor(actors[k].Name+"-x"+strconv.Itoa(rng.IntN(3)), 1+rng.IntN(3)))
		case 4:
			if len(actors) > 1 {
				actors = slices.Delete(actors, k, k+1)
			}
		case 5:
			pkg = "ops-warden/p" + strconv.Itoa(rng.IntN(2))
		}
	}
	seen := map[string]bool{}
	actors = slices.DeleteFunc(actors, func(a registry.Actor) bool {
		dup := seen[a.Name]
		seen[a.Name] = true
		return dup
	})
	return registry.New(base.Source, pkg, actors)
}

// TestDiffApplies: on registries with nothing in common but their
// layout, where many diffs are equally short and GNU diff may pick
// another, the diff still applies and its hunk counts are right.
func TestDiffApplies(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200; i++ {
		e, a := mutate(rng, 1+rng.IntN(12)), mutate(rng, 1+rng.IntN(12))
		r := Compare(mustSide(t, "e.json", e.Canonical()), mustSide(t, "a.json", a.Canonical()))
		if got := udifftest.Apply(t, string(r.Actual.Text), r.Diff); got != string(r.Want) {
			t.Fatalf("case %d: the diff applied to ACTUAL does not give EXPECTED", i)
		}
	}
}

func TestDiffNoNewlineAtEnd(t *testing.T) {
	data := fixture(t)
	trimmed := bytes.TrimSuffix(data, []byte("\n"))
	r := Compare(mustSide(t, "e.json", data), mustSide(t, "a.json", trimmed))
	want := "--- a.json\n+++ e.json\n@@ -49,4 +49,4 @@\n       ]\n     }\n   ]\n-}\n\\ No newline at end of file\n+}\n"
	if r.Diff != want {
		t.Errorf("got diff:\n%s\nwant:\n%s", r.Diff, want)
	}
	if got := udifftest.Apply(t, string(trimmed), r.Diff); got != string(data) {
		t.Error("the diff does not apply")
	}
}

// TestGitHubAnnotations checks the count limit, and that each annotation
// names the ACTUAL file's line of what it is about.
func TestGitHubAnnotations(t *testing.T) {
	r := largeReport(t)
	var out bytes.Buffer
	if err := r.Render(&out, GitHub, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	var errs []string
	for _, l := range lines {
		if strings.HasPrefix(l, "::error ") {
			errs = append(errs, l)
		}
	}
	if len(errs) != maxAnnotations {
		t.Errorf("got %d annotations, want %d", len(errs), maxAnnotations)
	}
	wantNotice := fmt.Sprintf("::notice title=Registry drift::%d more drift findings", len(r.Changes)-maxAnnotations)
	if !strings.Contains(out.String(), wantNotice) {
		t.Errorf("no %q in the output", wantNotice)
	}
	actual := strings.Split(string(r.Actual.Text), "\n")
	for _, e := range errs[:3] {
		// ::error file=large/actual.json,line=N,title=Registry drift%3A NAME::...
		var line int
		rest, _ := strings.CutPrefix(e, "::error file=large/actual.json,line=")
		num, rest, _ := strings.Cut(rest, ",")
		line, _ = strconv.Atoi(num)
		name := strings.TrimPrefix(rest[:strings.Index(rest, "::")], "title=Registry drift%3A ")
		actorName, member, _ := strings.Cut(name, ".")
		want := `"` + member + `"`
		if member == "" {
			want = "{"
		}
		if line < 1 || line > len(actual) || !strings.Contains(actual[line-1], want) {
			t.Errorf("annotation %q: line %d is %q, want the line of %s of %s", e, line, actual[min(max(line, 1), len(actual))-1], want, actorName)
		}
	}
	if !strings.Contains(out.String(), "::group::") || !strings.HasSuffix(out.String(), "::endgroup::\n") {
		t.Error("the diff is not in a ::group::")
	}
}

func TestInventoryPositions(t *testing.T) {
	data := "version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a:\n    principal: p\n    ttl_hours: 3\n  agt-b: {}\n" +
		"  agt-c:\n    disabled: true\n    subjects: [iam:role/c]\n"
	inv, err := inventory.Parse("inventory.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	p := inventoryPositions(inv)
	tests := []struct {
		c    Change
		want int
	}{
		{Change{Actor: "agt-a", Member: "principal"}, 5},
		{Change{Actor: "agt-a", Member: "default_ttl_hours"}, 6},
		{Change{Actor: "agt-a", Member: "max_ttl_hours"}, 4},
		{Change{Actor: "agt-b", Member: "principal"}, 7},
		{Change{Op: OpAdd, Actor: "agt-c"}, 8},
		{Change{Actor: "agt-c", Member: "subjects"}, 10},
		{Change{Op: OpAdd, Actor: "agt-new"}, 3},
		{Change{Member: "policy_package"}, 1},
	}
	for _, tt := range tests {
		if got := p.line(tt.c); got != tt.want {
			t.Errorf("line of %s: got %d, want %d", tt.c.Name(), got, tt.want)
		}
	}
}

// TestMarkdownLimit: whatever the limit, the Markdown fits, keeps its
// diff fence closed and says when it was cut.
func TestMarkdownLimit(t *testing.T) {
	r := largeReport(t)
	for _, limit := range []int{3000, 10000, MaxCommentBytes, MaxSummaryBytes} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			md := r.Markdown(limit)
			if len(md) > limit {
				t.Fatalf("got %d bytes, want at most %d", len(md), limit)
			}
			cut := strings.Contains(md, "_The diff was cut to fit")
			if full := len(r.Diff) > limit; cut != full {
				t.Errorf("cut note present: %v, want %v", cut, full)
			}
			if strings.Count(md, "```diff\n") != 1 || !strings.Contains(md, "\n```\n") {
				t.Error("the diff block is not opened and closed once")
			}
		})
	}
	if md := r.Markdown(MaxSummaryBytes); !strings.Contains(md, r.Diff) {
		t.Error("a 1 MiB summary should hold the whole diff")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"schema": "flex-auth.registry/v1"}`), 0o644)
	badInv := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badInv, []byte("version: 1\nactors:\n  agt-x:\n    ttl_hour: 3\n"), 0o644)
	tests := []struct {
		name, source, want string
	}{
		{"missing snapshot", filepath.Join(dir, "nope.json"), "no such file"},
		{"missing inventory", filepath.Join(dir, "nope.yaml"), "no such file"},
		{"invalid snapshot", bad, bad + ": actors: missing"},
		{"invalid inventory", badInv, badInv + ":4:"},
		{"unknown kind", "registry.txt", "cannot tell what this is"},
		{"bad URL", "http://", "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(context.Background(), tt.source, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// registryServer answers GET /v1/registry with status and body, and the
// header given as name and value pairs.
func registryServer(t *testing.T, body []byte, status int, header ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/registry" {
			http.NotFound(w, r)
			return
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRuntime(t *testing.T) {
	data := fixture(t)
	edited := registry.New("ops-warden", registry.DefaultPolicyPackage, []registry.Actor{actor("agt-only", 4)}).Canonical()
	tests := []struct {
		name    string
		body    []byte
		status  int
		suffix  string
		inSync  bool
		wantErr string
	}{
		{name: "in sync", body: data, status: 200, inSync: true},
		{name: "in sync, trailing slash", body: data, status: 200, suffix: "/", inSync: true},
		{name: "endpoint named", body: data, status: 200, suffix: "/v1/registry", inSync: true},
		{name: "drifted", body: edited, status: 200},
		{name: "not 200", body: []byte(`{"error": {"code": "x", "message": "registry not loaded"}}`), status: 503, wantErr: "503 Service Unavailable: registry not loaded"},
		{name: "invalid", body: []byte(`{"schema": 1}`), status: 200, wantErr: "invalid snapshot"},
		{name: "redirect", status: 0, wantErr: "a redirect to http://elsewhere.example/v1/registry: drift does not follow redirects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			if tt.status == 0 {
				srv = httptest.NewServer(http.RedirectHandler("http://elsewhere.example/v1/registry", http.StatusFound))
				defer srv.Close()
			} else {
				srv = registryServer(t, tt.body, tt.status)
			}
			r, err := Run(context.Background(), "../examples/ops-warden/inventory.yaml", srv.URL+tt.suffix, Options{})
			if !checkRunError(t, err, tt.wantErr) {
				return
			}
			if r.InSync() != tt.inSync {
				t.Errorf("InSync() = %v, want %v", r.InSync(), tt.inSync)
			}
			if r.Actual.Kind != Runtime || r.Actual.Source != srv.URL+tt.suffix {
				t.Errorf("actual: got %s %s, want runtime %s", r.Actual.Kind, r.Actual.Source, srv.URL+tt.suffix)
			}
			if _, err := r.Write(); !errors.Is(err, ErrNotWritable) {
				t.Errorf("Write to a runtime: got %v, want ErrNotWritable", err)
			}
		})
	}
}

func TestRuntimeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := Load(context.Background(), url, Options{})
	if err == nil || !strings.Contains(err.Error(), "is flex-auth running there?") {
		t.Errorf("got %v, want an unreachable error", err)
	}
}

func TestRuntimeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err := Load(context.Background(), srv.URL, Options{Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("got %v, want a timeout error", err)
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot.json")
	stale := registry.New("ops-warden", registry.DefaultPolicyPackage, []registry.Actor{actor("agt-old", 4)}).Canonical()
	if err := os.WriteFile(path, stale, 0o640); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), "../examples/ops-warden/inventory.yaml", path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := r.Write()
	if err != nil || !changed {
		t.Fatalf("Write: got %v, %v, want true, nil", changed, err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, fixture(t)) {
		t.Error("the written file is not the canonical snapshot of the inventory")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: got %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("got %d files in the directory, want 1 (no temporary left)", len(entries))
	}
	r, err = Run(context.Background(), "../examples/ops-warden/inventory.yaml", path, Options{})
	if err != nil || !r.InSync() {
		t.Fatalf("after Write: in sync %v, err %v; want in sync", r != nil && r.InSync(), err)
	}
	if changed, err := r.Write(); changed || err != nil {
		t.Errorf("Write in sync: got %v, %v, want false, nil", changed, err)
	}

	inv, err := Run(context.Background(), path, "../examples/ops-warden/inventory.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Write(); !errors.Is(err, ErrNotWritable) {
		t.Errorf("Write to an inventory: got %v, want ErrNotWritable", err)
	}
	var pe *fs.PathError
	ro := filepath.Join(dir, "missing-dir", "x.json")
	r.Actual.Source = ro
	r.Changes = append(r.Changes, Change{Op: OpAdd, Actor: "agt-x"})
	if _, err := r.Write(); !errors.As(err, &pe) {
		t.Errorf("Write into a missing directory: got %v, want a path error", err)
	}
}

func TestSnapshotPositions(t *testing.T) {
	data := []byte(`{
  "actors": [
    {"max_ttl_hours": 3, "name": "agt-b",
     "subjects": ["agt-b", "iam:agt-b"], "principal": "p", "type": "agt", "default_ttl_hours": 3},
    {
      "name": "agt-a", "type": "agt",
      "principal": "p",
      "default_ttl_hours": 1,
      "max_ttl_hours": 1,
      "subjects": ["agt-a",
        "iam:agt-a"]
    }
  ],
  "policy_package": "ops-warden/ssh-signing",
  "schema": "flex-auth.registry/v1", "source": "ops-warden",
  "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"
}`)
	if _, err := registry.ParseUnverified(data); err != nil {
		t.Fatalf("test input does not decode: %v", err)
	}
	p := snapshotPositions(data)
	tests := []struct {
		c    Change
		want int
	}{
		{Change{Actor: "agt-b", Member: "max_ttl_hours"}, 3},
		{Change{Actor: "agt-b", Member: "principal"}, 4},
		{Change{Actor: "agt-b", Member: "default_ttl_hours"}, 4},
		{Change{Op: OpRemove, Actor: "agt-b"}, 3},
		{Change{Actor: "agt-a", Member: "max_ttl_hours"}, 9},
		{Change{Actor: "agt-a", Member: "subjects"}, 10},
		{Change{Op: OpRemove, Actor: "agt-a"}, 5},
		{Change{Op: OpAdd, Actor: "agt-new"}, 2},
		{Change{Member: "policy_package"}, 14},
		{Change{Member: "source"}, 15},
	}
	for _, tt := range tests {
		if got := p.line(tt.c); got != tt.want {
			t.Errorf("line of %s %s: got %d, want %d", tt.c.Op, tt.c.Name(), got, tt.want)
		}
	}
}

// TestLargeNonCanonical: an ACTUAL file that is not canonical is diffed as
// one stretch, with no actor anchors; lines the other side lacks are set
// aside first. The diff must still turn ACTUAL into EXPECTED.
func TestLargeNonCanonical(t *testing.T) {
	e, a := largeSnapshots(600, 7)
	want := e.Canonical()
	tests := []struct {
		name   string
		actual []byte
	}{
		{"reindented", bytes.ReplaceAll(a.Canonical(), []byte("\n  "), []byte("\n   "))},
		{"reindented, same content", bytes.ReplaceAll(want, []byte("\n  "), []byte("\n\t"))},
		{"no final newline", bytes.TrimSuffix(a.Canonical(), []byte("\n"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(mustSide(t, "e.json", want), mustSide(t, "a.json", tt.actual))
			if len(r.Findings) != 1 || r.Findings[0].Kind != Formatting {
				t.Errorf("got findings %+v, want one formatting finding", r.Findings)
			}
			if got := udifftest.Apply(t, string(tt.actual), r.Diff); got != string(want) {
				t.Error("the diff applied to ACTUAL does not give EXPECTED")
			}
		})
	}
}

// TestUntrustedText: a source named with control characters and a file
// with CRLF line endings render in every format with nothing a terminal
// would act on, and the JSON report, decoded, still gives them exactly.
func TestUntrustedText(t *testing.T) {
	data := fixture(t)
	crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	e := mustSide(t, "expected\u202e.json", data)
	a := mustSide(t, "actual\x1b[2J\a.json", crlf)
	r := Compare(e, a)
	for _, f := range Formats {
		var out, summary bytes.Buffer
		if err := r.Render(&out, f, &summary); err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{out.String(), summary.String()} {
			for _, c := range text {
				if termsafe.Escaped(c) && c != '\n' {
					t.Fatalf("format %s: got %U in\n%s", f, c, text)
				}
			}
		}
		if f != JSON {
			continue
		}
		var got struct {
			Actual struct{ Source string }
			Diff   string
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Actual.Source != a.Source || got.Diff != r.Diff {
			t.Errorf("JSON: got source %q and a diff of %d bytes, want %q and %d", got.Actual.Source, len(got.Diff), a.Source, len(r.Diff))
		}
	}
}

func TestLabel(t *testing.T) {
	tests := []struct{ source, want string }{
		{"examples/registry.json", "examples/registry.json"},
		{"odd?name#.json", "odd?name#.json"},
		{"https://user:pw@flex-auth.example/", "https://xxxxx@flex-auth.example/"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
	}
	for _, tt := range tests {
		if got := Label(tt.source); got != tt.want {
			t.Errorf("Label(%q) = %q, want %q", tt.source, got, tt.want)
		}
	}
}

// TestComparePolicy checks every way the policies of the sides and the
// checked-in package can relate: drift only against the checked-in
// package, a note where a policy cannot be compared or is compared with
// nothing checked in.
func TestComparePolicy(t *testing.T) {
	const pkg = registry.DefaultPolicyPackage
	snap := registry.New("ops-warden", pkg, []registry.Actor{actor("agt-a", 4)}).Canonical()
	side := func(kind Kind, source, digest string, pkgName ...string) *Side {
		s, err := decode(source, kind, snap)
		if err != nil {
			t.Fatal(err)
		}
		if digest != "" {
			s.Policy = &Policy{Package: pkg, Digest: digest}
			if len(pkgName) > 0 {
				s.Policy.Package = pkgName[0]
			}
		}
		return s
	}
	file := func() *Side { return side(File, "snapshot.json", "") }
	inv := func() *Side { return side(Inventory, "inventory.yaml", "") }
	rt := func(digest string, pkgName ...string) *Side { return side(Runtime, runtimeSource, digest, pkgName...) }
	pub := func(digest string) *Side { return side(Publication, publicationSource, digest) }
	tests := []struct {
		name             string
		expected, actual *Side
		checkedIn        bool
		inSync           bool
		findings         []string // side of each policy finding
		inFinding        []string
		notes            []string // a part of each note
	}{
		{name: "files, nothing checked in", expected: inv(), actual: file(), inSync: true},
		{name: "service, nothing checked in", expected: inv(), actual: rt(otherDigest), inSync: true},
		{name: "two services serving the same, nothing checked in", expected: pub(otherDigest), actual: rt(otherDigest), inSync: true},
		{name: "two services serving different ones, nothing checked in", expected: pub(otherDigest), actual: rt(checkedInDigest), inSync: true,
			notes: []string{"policy not compared: EXPECTED " + publicationSource + " carries policy " + pkg + " " + otherDigest + ", ACTUAL " + runtimeSource + " serves " + pkg + " " + checkedInDigest}},
		{name: "service serves the checked-in package", expected: inv(), actual: rt(checkedInDigest), checkedIn: true, inSync: true},
		{name: "service serves another", expected: inv(), actual: rt(otherDigest), checkedIn: true, findings: []string{"actual"},
			inFinding: []string{"ACTUAL " + runtimeSource + " serves policy " + pkg + " " + otherDigest, "not the checked-in examples/ops-warden/policy_package.md (" + pkg + " " + checkedInDigest + ")", "reload it"}},
		{name: "service serves another package", expected: inv(), actual: rt(otherDigest, "ops-warden/legacy-signing"), checkedIn: true, findings: []string{"actual"},
			inFinding: []string{"serves policy ops-warden/legacy-signing " + otherDigest, "(" + pkg + " " + checkedInDigest + ")"}},
		{name: "publication carries another", expected: inv(), actual: pub(otherDigest), checkedIn: true, findings: []string{"actual"},
			inFinding: []string{"ACTUAL " + publicationSource + " carries policy", "flex-auth publish --policy examples/ops-warden/policy_package.md"}},
		{name: "service without the header", expected: inv(), actual: rt(""), checkedIn: true, inSync: true,
			notes: []string{"ACTUAL " + runtimeSource + " does not say which policy it serves (no X-Flex-Auth-Policy-Digest header"}},
		{name: "snapshot file", expected: inv(), actual: file(), checkedIn: true, inSync: true,
			notes: []string{"ACTUAL snapshot.json is a snapshot file, which names its policy package but not the policy's digest; the checked-in examples/ops-warden/policy_package.md is " + pkg + " " + checkedInDigest}},
		{name: "inventory", expected: file(), actual: inv(), checkedIn: true, inSync: true, notes: []string{"ACTUAL inventory.yaml is an inventory"}},
		{name: "EXPECTED carries another", expected: pub(otherDigest), actual: rt(checkedInDigest), checkedIn: true, findings: []string{"expected"},
			inFinding: []string{"EXPECTED " + publicationSource + " carries policy " + pkg + " " + otherDigest + ", but the checked-in examples/ops-warden/policy_package.md, given as its package, is " + pkg + " " + checkedInDigest}},
		{name: "both serve another", expected: pub(otherDigest), actual: rt(otherDigest), checkedIn: true, findings: []string{"expected", "actual"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want *Policy
			if tt.checkedIn {
				want = checkedInPolicy
			}
			r := ComparePolicy(tt.expected, tt.actual, want)
			if r.InSync() != tt.inSync {
				t.Errorf("InSync() = %v, want %v; findings %+v", r.InSync(), tt.inSync, r.Findings)
			}
			var sides []string
			for _, f := range r.Findings {
				if f.Kind != PolicyDrift {
					t.Errorf("got a %s finding, want policy findings only", f.Kind)
					continue
				}
				sides = append(sides, f.Side)
				if f.Line != 0 {
					t.Errorf("policy finding at line %d, want none", f.Line)
				}
				if strings.Contains(f.Message, "\n") {
					t.Errorf("finding on more than one line: %q", f.Message)
				}
			}
			if got, want := fmt.Sprint(sides), fmt.Sprint(tt.findings); got != want {
				t.Errorf("policy findings on sides %s, want %s", got, want)
			}
			var msgs strings.Builder
			for _, f := range r.Findings {
				msgs.WriteString(f.Message + "\n")
			}
			for _, s := range tt.inFinding {
				if !strings.Contains(msgs.String(), s) {
					t.Errorf("findings %q: want %q in them", msgs.String(), s)
				}
			}
			if len(r.Notes) != len(tt.notes) {
				t.Fatalf("got notes %q, want %d", r.Notes, len(tt.notes))
			}
			for i, n := range tt.notes {
				if !strings.Contains(r.Notes[i], n) {
					t.Errorf("note %q: want %q in it", r.Notes[i], n)
				}
			}
			// The registries are the same: the policy is all that may drift,
			// so the report says policy drift, and how to fix it.
			md := r.Markdown(MaxCommentBytes)
			switch {
			case !tt.inSync && !strings.HasPrefix(md, "### ❌ Policy drift: "):
				t.Errorf("Markdown heading: %s", md)
			case tt.inSync && strings.Contains(md, "Policy drift"):
				t.Errorf("Markdown of an in-sync report says policy drift: %s", md)
			}
			if tt.expected.Policy != nil || tt.actual.Policy != nil || tt.checkedIn {
				if !strings.Contains(md, "\n| policy digest | ") {
					t.Errorf("Markdown without the policy digest row:\n%s", md)
				}
			} else if strings.Contains(md, "policy digest") {
				t.Errorf("Markdown with a policy digest row though no policy is known:\n%s", md)
			}
		})
	}
}

// checkRunError checks Run's error against want, "" for none, and
// reports whether there is a report to check.
func checkRunError(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("got error %v, want one containing %q", err, want)
	case want == "" && err != nil:
		t.Fatal(err)
	}
	return err == nil
}

// TestRunPolicy runs drift against services serving the example's
// registry with a policy: the headers are read, compared with the
// checked-in package, and a bad header or a checked-in package of
// another name is an error.
func TestRunPolicy(t *testing.T) {
	data := fixture(t)
	const inventory = "../examples/ops-warden/inventory.yaml"
	pkg := registry.DefaultPolicyPackage
	tests := []struct {
		name        string
		pkg, digest string
		want        *Policy
		inSync      bool
		notes       int
		wantErr     string
	}{
		{name: "same policy", pkg: pkg, digest: checkedInDigest, want: checkedInPolicy, inSync: true},
		{name: "another policy", pkg: pkg, digest: otherDigest, want: checkedInPolicy},
		{name: "no header", want: checkedInPolicy, inSync: true, notes: 1},
		{name: "another policy, nothing checked in", pkg: pkg, digest: otherDigest, inSync: true},
		{name: "malformed header", pkg: pkg, digest: "sha256:nothex", want: checkedInPolicy, wantErr: "malformed answer: header X-Flex-Auth-Policy-Digest: want"},
		{name: "checked-in package of another name", pkg: pkg, digest: checkedInDigest, want: &Policy{Package: "ops-warden/other", Digest: checkedInDigest, File: "other.md"},
			wantErr: "policy other.md is package ops-warden/other, but EXPECTED ../examples/ops-warden/inventory.yaml is a registry for ops-warden/ssh-signing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.digest != "" {
				header = []string{"X-Flex-Auth-Package", tt.pkg, "X-Flex-Auth-Policy-Digest", tt.digest}
			}
			srv := registryServer(t, data, http.StatusOK, header...)
			r, err := Run(context.Background(), inventory, srv.URL, Options{Policy: tt.want})
			if !checkRunError(t, err, tt.wantErr) {
				return
			}
			if r.InSync() != tt.inSync || len(r.Notes) != tt.notes {
				t.Errorf("got in sync %v, notes %q; want %v and %d notes", r.InSync(), r.Notes, tt.inSync, tt.notes)
			}
			if tt.digest != "" && (r.Actual.Policy == nil || r.Actual.Policy.Digest != tt.digest || r.Actual.Policy.Package != tt.pkg) {
				t.Errorf("ACTUAL's policy: got %+v, want %s %s", r.Actual.Policy, tt.pkg, tt.digest)
			}
			if r.Policy != tt.want {
				t.Errorf("report's checked-in policy: got %+v, want %+v", r.Policy, tt.want)
			}
			// The policy is the service's to fix: --write is refused as before.
			if _, err := r.Write(); !errors.Is(err, ErrNotWritable) {
				t.Errorf("Write to a runtime: got %v, want ErrNotWritable", err)
			}
		})
	}
}

// TestWriteWithPolicyFinding: a policy finding about EXPECTED does not
// make --write rewrite an ACTUAL file that is in sync.
func TestWriteWithPolicyFinding(t *testing.T) {
	path := filepath.Join(t.TempDir(), "actual.json")
	data := fixture(t)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Load(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := decode(publicationSource, Publication, data)
	if err != nil {
		t.Fatal(err)
	}
	e.Policy = &Policy{Package: registry.DefaultPolicyPackage, Digest: otherDigest}
	r := ComparePolicy(e, a, checkedInPolicy)
	if r.InSync() || len(r.Findings) != 1 || r.Findings[0].Side != "expected" {
		t.Fatalf("got findings %+v, want one about EXPECTED's policy", r.Findings)
	}
	if changed, err := r.Write(); err != nil || changed {
		t.Errorf("Write: got changed %v, error %v; want nothing written", changed, err)
	}
}
