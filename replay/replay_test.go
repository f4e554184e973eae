package replay

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/internal/render"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
	"github.com/coulomb/flex-auth/serve"
)

// bodies are requests of every kind the example decides, with contexts
// whose numbers and strings are written in every way a client may write
// them.
var bodies = []string{
	`{"subject":"iam:agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"principal":"agt-task-bridge","ttl_hours":24}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":12}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":12.0}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":1.2e1}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":"12"}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":99999999999999999999}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":-1}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":25}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":null}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":true}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":[24]}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":{"h":24}}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge"}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":null}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"principal":"adm-full","ttl_hours":2}}`,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"principal":"agt-task-bridge\u2028","ttl_hours":2}}`,
	`{"subject":"adm-example","resource":"agt-state-hub-bridge","context":{"ttl_hours":2}}`,
	`{"subject":"adm-example","resource":"adm-example","context":{"ttl_hours":48,"note":"a\nb \"c\" \u00e9 \u0085"}}`,
	`{"subject":"iam:atm-backup-daily","resource":"atm-backup-daily","action":"ssh.sign","context":{"ttl_hours":8}}`,
	`{"subject":"iam:atm-backup-daily","resource":"atm-backup-daily","action":"ssh.exec","context":{"ttl_hours":8}}`,
	`{"subject":"agt-codex-interhub-bootstrap","resource":"agt-codex-interhub-bootstrap","context":{"ttl_hours":2}}`,
	`{"subject":"agt-codex-interhub-bootstrap","resource":"agt-codex-interhub-bootstrap","context":{"ttl_hours":3}}`,
	`{"subject":"agt-nobody","resource":"agt-nobody"}`,
}

// record serves the built-in example with an in-memory log and sends
// bodies to it n times each; it returns the log. The requests are served
// one at a time, each handler writing its own line: the buffer needs no
// lock.
func record(t testing.TB, n int) []byte {
	t.Helper()
	log := &bytes.Buffer{}
	s, err := serve.New(serve.Options{Source: serve.Source{Registry: examples.OpsWardenRegistry, Policy: examples.OpsWardenPolicy, FS: examples.OpsWarden, Name: "example"}, DecisionLog: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range n {
		for _, body := range bodies {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			s.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("%s: %d %s", body, w.Code, w.Body)
			}
		}
	}
	return log.Bytes()
}

// pair binds the example's policy to its registry, changed by edit.
func pair(t testing.TB, edit func(*registry.Snapshot)) *policy.Evaluator {
	t.Helper()
	data, err := examples.OpsWarden.ReadFile(examples.OpsWardenRegistry)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := registry.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(snap)
		snap = registry.New(snap.Source, snap.PolicyPackage, snap.Actors)
	}
	src, err := examples.OpsWarden.ReadFile(examples.OpsWardenPolicy)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := policy.Parse("policy_package.md", src)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := policy.NewEvaluator(pkg, snap)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func replayLog(t testing.TB, opt Options, logs ...[]byte) *Report {
	t.Helper()
	rp, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range logs {
		if err := rp.Add(fmt.Sprintf("log%d", i+1), bytes.NewReader(l)); err != nil {
			t.Fatal(err)
		}
	}
	return rp.Report()
}

// TestReplayUnchanged: every decision the server made, replayed under the
// pair that made it, comes out the same, whatever the request held.
func TestReplayUnchanged(t *testing.T) {
	log := record(t, 3)
	r := replayLog(t, Options{Pairs: []*policy.Evaluator{pair(t, nil)}}, log)
	if r.Decisions != 3*len(bodies) || r.Changed() != 0 || !r.Complete() || r.Other != 0 {
		t.Fatalf("got %d decisions, %d changed, complete %v, %d other lines: %+v", r.Decisions, r.Changed(), r.Complete(), r.Other, r)
	}
	if len(r.Recorded) != 1 || r.Recorded[0].Count != r.Decisions || r.Recorded[0].Pair != r.Pairs[0] {
		t.Errorf("recorded under: got %+v, want the one pair given", r.Recorded)
	}
	if !strings.Contains(r.TextReport(), "none of 72 recorded decisions would change") {
		t.Errorf("text report:\n%s", r.TextReport())
	}
}

// TestReplayChanged: a registry that lowers an actor's maximum TTL and
// drops another's extra subject flips exactly the decisions it should.
func TestReplayChanged(t *testing.T) {
	log := record(t, 2)
	ev := pair(t, func(s *registry.Snapshot) {
		for i := range s.Actors {
			a := &s.Actors[i]
			switch a.Name {
			case "agt-state-hub-bridge":
				a.MaxTTLHours, a.DefaultTTLHours = 12, 12 // 24 and 25 ... were allowed up to 24
			case "atm-backup-daily":
				a.Principal = "atm-backup" // a principal no request asks for
			}
		}
	})
	r := replayLog(t, Options{Pairs: []*policy.Evaluator{ev}, MaxExamples: 1}, log)
	// Per round: the bridge's allow at 24 becomes ttl_out_of_bounds; at 12
	// it stays; 25 stays ttl_out_of_bounds. The backup's allow asks for no
	// principal: unchanged.
	if r.Decisions != 2*len(bodies) || r.Changed() != 2 || r.Transitions[AllowToDeny] != 2 || r.Transitions[DenyToAllow] != 0 || r.Transitions[ReasonOnly] != 0 {
		t.Fatalf("got %d decisions, %d changed, transitions %v", r.Decisions, r.Changed(), r.Transitions)
	}
	if len(r.Groups) != 1 {
		t.Fatalf("groups: got %d, want 1: %+v", len(r.Groups), r.Groups)
	}
	g := r.Groups[0]
	if g.Actor != "agt-state-hub-bridge" || g.From != (Outcome{"allow", "signing_policy_matched"}) || g.To != (Outcome{"deny", "ttl_out_of_bounds"}) || g.Count != 2 || len(g.Examples) != 1 {
		t.Errorf("group: got %+v", g)
	}
	c := g.Examples[0]
	if c.Subject != "iam:agt-state-hub-bridge" || c.Action != "ssh.sign" || !strings.HasPrefix(c.ID, "decision:") || c.At.Line != 1 || c.Time == "" {
		t.Errorf("change: got %+v", c)
	}
	text := r.TextReport()
	for _, want := range []string{"2 of 48 recorded decisions would change: 2 allow to deny, 0 deny to allow", "agt-state-hub-bridge: allow signing_policy_matched -> deny ttl_out_of_bounds: 2", "and 1 more"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report: want %q in\n%s", want, text)
		}
	}
}

// TestReplayIncomplete: decisions of another package, and decision lines
// that cannot be read, are not decided again, and the report says so.
func TestReplayIncomplete(t *testing.T) {
	log := record(t, 1)
	lines := strings.SplitAfter(string(log), "\n")
	other := strings.Replace(lines[0], `"policy":"ops-warden/ssh-signing"`, `"policy":"other/pkg"`, 1)
	broken := strings.Replace(lines[1], `"effect":"allow"`, `"effect":"maybe"`, 1)
	data := []byte(strings.Join(lines, "") + other + broken + "not a line\n")
	r := replayLog(t, Options{Pairs: []*policy.Evaluator{pair(t, nil)}}, data)
	if r.Complete() || len(r.Skipped) != 1 || r.Skipped[0].Package != "other/pkg" || r.Skipped[0].Count != 1 || r.Malformed != 1 || r.Other != 1 {
		t.Fatalf("got skipped %+v, malformed %d, other %d", r.Skipped, r.Malformed, r.Other)
	}
	if !strings.Contains(r.FirstMalformed, "log1:26: effect \"maybe\"") {
		t.Errorf("first malformed: %s", r.FirstMalformed)
	}
	if text := r.TextReport(); !strings.Contains(text, "NOT DECIDED AGAIN: 1 decision of package other/pkg") {
		t.Errorf("text report:\n%s", text)
	}
}

// TestReplayRender checks the JSON, Markdown and GitHub forms, and that
// what clients sent cannot break out of them.
func TestReplayRender(t *testing.T) {
	log := record(t, 1)
	hostile := strings.Replace(string(log), `"subject":"adm-example","action":"ssh.sign","resource":"adm-example"`, `"subject":"x|y\u001b[31m`+"`"+`::error::z","action":"ssh.sign","resource":"adm-example"`, 1)
	ev := pair(t, func(s *registry.Snapshot) {
		for i := range s.Actors {
			if s.Actors[i].Name == "adm-example" {
				s.Actors[i].MaxTTLHours, s.Actors[i].DefaultTTLHours = 8, 8
				s.Actors[i].Subjects = append(s.Actors[i].Subjects, "x|y\u001b[31m`::error::z")
			}
		}
	})
	r := replayLog(t, Options{Pairs: []*policy.Evaluator{ev}}, []byte(hostile))
	if r.Changed() == 0 {
		t.Fatal("nothing changed")
	}
	var js bytes.Buffer
	if err := r.Render(&js, render.JSON, nil, 1<<20); err != nil || !strings.Contains(js.String(), `"format_version": 1`) || !strings.Contains(js.String(), `"allow_to_deny": 1`) {
		t.Errorf("json: %v\n%s", err, js.String())
	}
	md := r.Markdown(1 << 16)
	if strings.Contains(md, "\u001b") || !strings.Contains(md, "### ⚠️ "+Heading) || !strings.Contains(md, `\|`) {
		t.Errorf("markdown:\n%s", md)
	}
	var gh, summary bytes.Buffer
	if err := r.Render(&gh, render.GitHub, &summary, 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(gh.String(), "\n") {
		if strings.HasPrefix(l, "::") && !strings.HasPrefix(l, "::warning ") && !strings.HasPrefix(l, "::group::") && !strings.HasPrefix(l, "::endgroup::") {
			t.Errorf("github: a workflow command the report did not mean: %q", l)
		}
	}
	if summary.String() != r.Markdown(1<<20)+"\n" {
		t.Errorf("summary: got %q", summary.String())
	}
	if small := r.Markdown(400); len(small) > 400 {
		t.Errorf("markdown over its limit: %d bytes", len(small))
	}
}

// TestReplayBounded: past MaxGroups, changes are counted, not kept.
func TestReplayBounded(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, `{"time":"2026-06-24T09:12:03.123456789Z","decision_id":"decision:%016x","subject":"s","action":"ssh.sign","resource":"agt-gone-%d","context":{},"effect":"allow","reason":"signing_policy_matched","policy":"ops-warden/ssh-signing","policy_digest":"sha256:00","registry_digest":"sha256:00"}`+"\n", i, i)
	}
	r := replayLog(t, Options{Pairs: []*policy.Evaluator{pair(t, nil)}, MaxGroups: 10}, []byte(b.String()))
	if r.Changed() != 50 || len(r.Groups) != 10 || r.Ungrouped != 40 || r.Transitions[AllowToDeny] != 50 {
		t.Errorf("got %d changed, %d groups, %d ungrouped", r.Changed(), len(r.Groups), r.Ungrouped)
	}
}

// FuzzReplayDecidesAsServed sends any body to the server and replays what
// it logged under the same pair: a decision never comes out otherwise, so
// replay reads a logged request (its context above all) as the server
// read it.
func FuzzReplayDecidesAsServed(f *testing.F) {
	for _, b := range bodies {
		f.Add(b)
	}
	log := &bytes.Buffer{}
	s, err := serve.New(serve.Options{Source: serve.Source{Registry: examples.OpsWardenRegistry, Policy: examples.OpsWardenPolicy, FS: examples.OpsWarden, Name: "example"}, DecisionLog: log})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	ev := pair(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		before := len(log.Bytes())
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			return
		}
		rep := replayLog(t, Options{Pairs: []*policy.Evaluator{ev}, Workers: 1}, log.Bytes()[before:])
		if rep.Decisions != 1 || rep.Changed() != 0 || !rep.Complete() {
			t.Errorf("body %q: replayed %d decisions, %d changed (%+v), complete %v; log:\n%s", body, rep.Decisions, rep.Changed(), rep.Groups, rep.Complete(), log.Bytes()[before:])
		}
	})
}

// TestScratchCacheBounded: a worker decodes a subject or context it saw
// before from its cache, and keeps at most maxCached of each, of at most
// maxCachedLen bytes, whatever the log holds.
func TestScratchCacheBounded(t *testing.T) {
	var sc scratch
	for i := range maxCached + 100 {
		raw := fmt.Sprintf(`{"ttl_hours":%d,"principal":"p-%d"}`, i, i)
		for range 2 { // the second from the cache, while it has room
			m, err := sc.object("context", []byte(raw))
			if err != nil || m["ttl_hours"] != int64(i) || m["principal"] != fmt.Sprintf("p-%d", i) {
				t.Fatalf("%s: got %v, %v", raw, m, err)
			}
		}
		s := fmt.Sprintf(`"agt-%d\u00e9"`, i)
		for range 2 {
			if got := sc.str([]byte(s)); got != fmt.Sprintf("agt-%dé", i) {
				t.Fatalf("%s: got %q", s, got)
			}
		}
	}
	if len(sc.objects) != maxCached || len(sc.strs) != maxCached {
		t.Errorf("cached %d objects and %d strings, want %d each", len(sc.objects), len(sc.strs), maxCached)
	}
	var fresh scratch
	long := `{"note":"` + strings.Repeat("x", maxCachedLen) + `"}`
	if m, err := fresh.object("context", []byte(long)); err != nil || len(m["note"].(string)) != maxCachedLen {
		t.Fatalf("a long context: got %v, %v", m, err)
	}
	if len(fresh.objects) != 0 {
		t.Errorf("a context over maxCachedLen bytes was cached")
	}
}
