package serve

import (
	"encoding/json"
	"testing"
)

// TestAuthZENLogLinesDecideAgain checks what docs/authzen.md promises of
// an AuthZEN decision log line: it holds everything needed to decide it
// again. Evaluations, batch items (with defaults and an item's own
// context), and search results of the three example packages are
// decided; then every line is sent back alone, as a single evaluation
// built from nothing but the line (its authzen entities, its context,
// its package), and must get the same effect and reason from the same
// policy and data digests.
func TestAuthZENLogLinesDecideAgain(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, certPackage, todoPackage, opsPackage)
	requests := []struct{ path, body string }{
		// The certification package: properties on every entity, a context.
		{"/access/v1/evaluation", `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":{"name":"write"},
			"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}},"context":{"ip":"192.168.1.1"}}`},
		{"/access/v1/evaluation", `{"subject":` + alice + `,"action":{"name":"delete","properties":{"soft":false}},"resource":` + record1 + `}`},
		// A batch whose items take the defaults, one with its own context
		// and one its own action.
		{"/access/v1/evaluations", `{"subject":` + alice + `,"action":` + write + `,"context":{"time":"2025-06-27T18:03-07:00"},"evaluations":[
			{"resource":{"type":"record","id":"record-1","properties":{"status":"active"}}},
			{"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}},"context":{"source":"batch-override"}},
			{"action":{"name":"delete","properties":{"soft":true}},"resource":` + record1 + `}]}`},
		{"/access/v1/evaluations", `{"resource":` + record1 + `,"options":{"evaluations_semantic":"deny_on_first_deny"},
			"evaluations":[{"subject":` + alice + `,"action":` + read + `},{"subject":` + bob + `,"action":` + write + `},{"subject":` + bob + `,"action":` + read + `}]}`},
		// Searches: each result is a decision with the candidate in place.
		{"/access/v1/search/subject", `{"subject":{"type":"user"},"action":` + write + `,"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`},
		{"/access/v1/search/resource", `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":` + write + `,"resource":{"type":"record"}}`},
		{"/access/v1/search/action", `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`},
		// The todo package: the owner is a property of the resource.
		{"/access/v1/evaluation", `{"subject":{"type":"user","id":"` + morty + `"},"action":{"name":"can_update_todo"},
			"resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91","properties":{"ownerID":"morty@the-citadel.com"}}}`},
		{"/access/v1/evaluations", `{"subject":{"type":"user","id":"` + rick + `"},"evaluations":[
			{"action":{"name":"can_delete_todo"},"resource":{"type":"todo","id":"t1","properties":{"ownerID":"beth@the-smiths.com"}}},
			{"action":{"name":"can_read_user"},"resource":{"type":"user","id":"beth@the-smiths.com"}}]}`},
		// The ops-warden package: the context carries the principal and TTL.
		{"/access/v1/evaluation", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},
			"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"principal":"agt-task-bridge","ttl_hours":24}}`},
		{"/access/v1/evaluation", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},
			"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":25}}`},
		{"/access/v1/search/resource", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},"resource":{"type":"actor"},"context":{"ttl_hours":1}}`},
		{"/access/v1/search/subject", `{"subject":{"type":"iam"},"action":{"name":"ssh.sign"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":1}}`},
	}
	for _, r := range requests {
		if w := az(s, r.path, r.body); w.Code != 200 {
			t.Fatalf("%s %s: %d %s", r.path, r.body, w.Code, w.Body)
		}
	}
	lines := log.lines(t)

	endpoints := map[string]int{}
	packages := map[string]int{}
	for i, line := range lines {
		entities, _ := line["authzen"].(map[string]any)
		if entities == nil {
			t.Fatalf("line %d has no authzen member: %v", i, line)
		}
		endpoints[entities["endpoint"].(string)]++
		pkg := line["policy"].(string)
		packages[pkg]++
		body, err := json.Marshal(map[string]any{"subject": entities["subject"], "action": entities["action"], "resource": entities["resource"], "context": line["context"]})
		if err != nil {
			t.Fatal(err)
		}
		d := decodeJSON[decision](t, az(s, "/"+pkg+evalPath, string(body)))
		again := log.lines(t)
		replay := again[len(again)-1]
		if replay["decision_id"] != d.Context.DecisionID {
			t.Fatalf("line %d: the last line is not the replayed decision", i)
		}
		for _, member := range []string{"effect", "reason", "policy", "policy_digest", "registry_digest", "data_digest", "subject", "action", "resource"} {
			if a, b := mustJSON(t, line[member]), mustJSON(t, replay[member]); a != b {
				t.Errorf("line %d (%s, %s): %s %s, decided again from the line alone: %s\nline:   %v\nreplay: %v",
					i, entities["endpoint"], pkg, member, a, b, line, replay)
			}
		}
		if *d.Decision != (line["effect"] == "allow") {
			t.Errorf("line %d: effect %v, answered again %v", i, line["effect"], *d.Decision)
		}
	}
	for _, ep := range []string{"evaluation", "evaluations", "search/subject", "search/resource", "search/action"} {
		if endpoints[ep] == 0 {
			t.Errorf("no line from %s: the test does not cover it (lines by endpoint: %v)", ep, endpoints)
		}
	}
	if len(packages) != 3 {
		t.Errorf("lines by package %v, want all three", packages)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
