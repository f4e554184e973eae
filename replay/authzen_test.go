package replay

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/serve"
)

const (
	opsPackage  = "../examples/ops-warden"
	todoPackage = "../examples/authzen-todo"
	rick        = `{"type":"user","id":"CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"}`
	morty       = `{"type":"user","id":"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"}`
	beth        = `{"type":"user","id":"CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"}`
)

// azRequests are AuthZEN requests to a server with the ops-warden and the
// todo packages: single evaluations, a batch and a search, to each model,
// with entity properties the decisions depend on.
var azRequests = []struct{ path, body string }{
	{"/access/v1/evaluation", `{"subject":` + morty + `,"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"t1"}}`},
	{"/access/v1/evaluation", `{"subject":` + beth + `,"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"t1"}}`},
	{"/access/v1/evaluations", `{"subject":` + morty + `,"evaluations":[` +
		`{"action":{"name":"can_delete_todo"},"resource":{"type":"todo","id":"t2","properties":{"ownerID":"morty@the-citadel.com"}}},` +
		`{"action":{"name":"can_delete_todo"},"resource":{"type":"todo","id":"t3","properties":{"ownerID":"rick@the-citadel.com"}}},` +
		`{"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"t3","properties":{"ownerID":"rick@the-citadel.com"}}}]}`},
	{"/access/v1/search/resource", `{"subject":` + rick + `,"action":{"name":"can_read_user"},"resource":{"type":"user"}}`},
	{"/access/v1/evaluation", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"principal":"agt-task-bridge","ttl_hours":24}}`},
	{"/access/v1/evaluations", `{"subject":{"type":"iam","id":"agt-state-hub-bridge"},"action":{"name":"ssh.sign"},"evaluations":[` +
		`{"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":3}},` +
		`{"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":25}},` +
		`{"resource":{"type":"host","id":"agt-state-hub-bridge"},"context":{"ttl_hours":1}}]}`},
}

// recordAuthZEN serves both packages with an in-memory log, sends the
// AuthZEN requests and one POST /v1/check, and returns the log.
func recordAuthZEN(t *testing.T) []byte {
	t.Helper()
	log := &bytes.Buffer{}
	s, err := serve.New(serve.Options{Packages: []serve.Source{{Package: opsPackage}, {Package: todoPackage}}, DecisionLog: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := func(path, body string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s %s: %d %s", path, body, w.Code, w.Body)
		}
	}
	for _, rq := range azRequests {
		send(rq.path, rq.body)
	}
	send("/v1/check", bodies[0])
	return log.Bytes()
}

func loadDir(t *testing.T, dir string) *policy.Evaluator {
	t.Helper()
	ev, err := policy.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestReplayAuthZEN: decisions made on the AuthZEN API, by a registry
// package and by an AuthZEN model package, in batches and searches, are
// decided again from what their lines record (the entities, their
// properties, the resource's type) and come out as served; a changed
// entities package flips exactly the decisions it should.
func TestReplayAuthZEN(t *testing.T) {
	log := recordAuthZEN(t)
	const decisions = 2 + 3 + 5 + 1 + 3 + 1 // the search answers the five users
	both := []*policy.Evaluator{loadDir(t, opsPackage), loadDir(t, todoPackage)}
	r := replayLog(t, Options{Pairs: both}, log)
	if r.Decisions != decisions || r.Changed() != 0 || !r.Complete() {
		t.Fatalf("under the packages that decided: %d decisions, %d changed, complete %v (%s), want %d, 0, true\n%s",
			r.Decisions, r.Changed(), r.Complete(), r.FirstMalformed, decisions, r.TextReport())
	}
	if len(r.Recorded) != 2 || r.Recorded[0].Package != "authzen/todo" || r.Recorded[0].DataDigest != both[1].DataDigest() || r.Recorded[0].RegistryDigest != "" ||
		r.Recorded[1].RegistryDigest != both[0].DataDigest() {
		t.Errorf("recorded under: got %+v, want the todo package with its entities' digest and the ops-warden pair", r.Recorded)
	}

	// Only the ops-warden package: the todo decisions are not decided
	// again, and the report says so.
	r = replayLog(t, Options{Pairs: both[:1]}, log)
	if r.Complete() || len(r.Skipped) != 1 || r.Skipped[0].Package != "authzen/todo" || r.Skipped[0].Count != 2+3+5 {
		t.Errorf("without the todo package: skipped %+v", r.Skipped)
	}

	// Editors no longer create todos: Morty's create flips, nothing else.
	dir := t.TempDir()
	for _, name := range []string{"policy_package.md", "entities.yaml"} {
		data, err := os.ReadFile(filepath.Join(todoPackage, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "policy_package.md" {
			changed := strings.Replace(string(data), `roles.exists(r, r in ["editor", "admin", "evil_genius"])`, `roles.exists(r, r in ["admin", "evil_genius"])`, 1)
			if changed == string(data) {
				t.Fatal("the todo package no longer has the rule this test changes")
			}
			data = []byte(changed)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r = replayLog(t, Options{Pairs: []*policy.Evaluator{both[0], loadDir(t, dir)}}, log)
	if r.Changed() != 1 || r.Transitions[AllowToDeny] != 1 || len(r.Groups) != 1 {
		t.Fatalf("editors no longer create: %d changed, transitions %v, want one allow_to_deny\n%s", r.Changed(), r.Transitions, r.TextReport())
	}
	g := r.Groups[0]
	if g.Actor != "t1" || g.From != (Outcome{"allow", "editor_creates"}) || g.To != (Outcome{"deny", "not_permitted"}) {
		t.Errorf("group: got %+v", g)
	}
}

// TestAuthZENMembersNotCached: the authzen member of every line is its
// own (a batch's id, a line's index), so keeping it would fill the
// worker's cache and leave no room for the contexts it is for.
func TestAuthZENMembersNotCached(t *testing.T) {
	var sc scratch
	var p decisionlog.Parser
	var rec decisionlog.Record
	for _, line := range bytes.SplitAfter(recordAuthZEN(t), []byte("\n")) {
		if p.Parse(line, &rec) != nil || rec.Kind != decisionlog.Decision || rec.AuthZEN == nil {
			continue
		}
		if _, err := sc.access(&rec); err != nil {
			t.Fatal(err)
		}
		if _, ok := sc.objects[string(rec.AuthZEN)]; ok {
			t.Fatalf("the authzen member %s was cached", rec.AuthZEN)
		}
	}
	if len(sc.objects) == 0 {
		t.Fatal("no context was cached: the test read no AuthZEN line with a context")
	}
}
