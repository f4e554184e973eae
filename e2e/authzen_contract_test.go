package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// azEndpoints are the AuthZEN endpoints CONTRACT section 7 names.
var azEndpoints = []string{"/access/v1/evaluation", "/access/v1/evaluations",
	"/access/v1/search/subject", "/access/v1/search/resource", "/access/v1/search/action"}

// TestAuthZENErrors: over the real binary, what the AuthZEN endpoints
// answer to what is not a request they take: the contract's error shape
// and status codes (405 with an Allow header, 400 for a body that is not
// JSON, whatever its Content-Type says, 413 over 64 KiB, 404 for other
// paths and, on a server without a registry package, for /v1/check and
// /v1/registry), the X-Request-ID echoed on each, and no decision logged
// for any.
func TestAuthZENErrors(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-certification", "--log", s.Log)
	big := `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "context": {"pad": "` +
		strings.Repeat("x", 64<<10) + `"}}`
	type errCase struct {
		name, method, path, contentType, body string
		status                                int
		code, allow                           string
	}
	var tests []errCase
	for _, ep := range azEndpoints {
		tests = append(tests,
			errCase{"GET " + ep, "GET", ep, "", "", 405, "method_not_allowed", "POST"},
			errCase{"text/plain to " + ep, "POST", ep, "text/plain", reqAliceReadRecord1, 400, "invalid_request", ""},
			errCase{"no Content-Type to " + ep, "POST", ep, "", reqAliceReadRecord1, 400, "invalid_request", ""},
			errCase{"malformed JSON to " + ep, "POST", ep, "application/json", `{"subject": {`, 400, "invalid_request", ""},
			errCase{"trailing data to " + ep, "POST", ep, "application/json", reqAliceReadRecord1 + ` {}`, 400, "invalid_request", ""},
			errCase{"over 64 KiB to " + ep, "POST", ep, "application/json", big, 413, "request_too_large", ""},
		)
	}
	tests = append(tests,
		errCase{"POST metadata", "POST", "/.well-known/authzen-configuration", "application/json", "{}", 405, "method_not_allowed", "GET, HEAD"},
		errCase{"an unknown AuthZEN path", "POST", "/access/v1/search/nothing", "application/json", reqAliceReadRecord1, 404, "not_found", ""},
		errCase{"an unknown package's path", "POST", "/no/such/package/access/v1/evaluation", "application/json", reqAliceReadRecord1, 404, "not_found", ""},
		errCase{"/v1/check without a registry package", "POST", "/v1/check", "application/json", `{"subject": "alice", "resource": "record-1"}`, 404, "not_found", ""},
		errCase{"/v1/registry without a registry package", "GET", "/v1/registry", "", "", 404, "not_found", ""},
	)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("e2e-error-%d", i)
			r := s.do(tt.method, tt.path, tt.contentType, []byte(tt.body), "X-Request-ID", id)
			if r.Status != tt.status || str(r.JSON(t), "error.code") != tt.code || str(r.JSON(t), "error.message") == "" {
				t.Errorf("got %d %s, want %d with error code %s and a message", r.Status, r.Body, tt.status, tt.code)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if got := r.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if strings.HasPrefix(tt.path, "/access/v1/") || strings.HasPrefix(tt.path, "/.well-known/") {
				if got := r.Header.Get("X-Request-ID"); got != id {
					t.Errorf("X-Request-ID %q, want %q echoed", got, id)
				}
			}
		})
	}
	// Errors are not decisions: nothing was logged. One decision after
	// them is the log's first line.
	r := s.do("POST", "/access/v1/evaluation", "application/json", []byte(reqAliceReadRecord1))
	if r.Status != 200 || path(r.JSON(t), "decision") != true {
		t.Fatalf("a valid evaluation after the errors: %d %s", r.Status, r.Body)
	}
	if lines, partial := readLog(t, readFile(t, s.Log)); len(lines) != 1 || len(partial) != 0 || lines[0].str("decision_id") != str(r.JSON(t), "context.decision_id") {
		t.Errorf("decision log after the errors and one decision: %d lines %s + %q, want the one decision", len(lines), mustMarshal(t, lines), partial)
	}
}

// TestAuthZENDecisionsLogged: every AuthZEN evaluation is a logged
// decision (CONTRACT section 7): the one of /evaluation, each item of
// /evaluations, each candidate a search admits. The decision ids the
// answers give are exactly the log's, one line each, and each line
// holds the effect the answer gave, its reason, the package and its
// digests, and the endpoint that decided it.
func TestAuthZENDecisionsLogged(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-certification", "--log", s.Log)
	health := s.health()
	pkg, policyDigest := str(health, "policy.package"), str(health, "policy.digest")

	type given struct {
		endpoint, reason string
		allow            bool
	}
	want := map[string]given{}
	add := func(endpoint, id, reason string, allow bool) {
		if !strings.HasPrefix(id, "decision:") || reason == "" {
			t.Fatalf("%s: decision id %q, reason %q", endpoint, id, reason)
		}
		if _, dup := want[id]; dup {
			t.Fatalf("%s: decision id %s given twice", endpoint, id)
		}
		want[id] = given{endpoint, reason, allow}
	}
	post := func(endpoint, body string) map[string]any {
		t.Helper()
		r := s.do("POST", "/access/v1/"+endpoint, "application/json", []byte(body))
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", endpoint, r.Status, r.Body)
		}
		return r.JSON(t)
	}
	// decisions returns the context.decisions of a batch or search answer.
	decisions := func(v map[string]any, n int) []map[string]any {
		t.Helper()
		list, _ := path(v, "context.decisions").([]any)
		if len(list) != n {
			t.Fatalf("context.decisions: %d, want %d: %v", len(list), n, v)
		}
		out := make([]map[string]any, n)
		for i, d := range list {
			out[i] = d.(map[string]any)
		}
		return out
	}

	v := post("evaluation", reqBobWriteRecord1)
	add("evaluation", str(v, "context.decision_id"), str(v, "context.reason"), path(v, "decision") == true)

	v = post("evaluations", `{"evaluations": [
		{"subject": {"type": "user", "id": "bob"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-1"}},
		{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}},
		{"subject": {"type": "user", "id": "bob"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}]}`)
	evs, _ := v["evaluations"].([]any)
	ds := decisions(v, len(evs))
	for i, d := range ds {
		add("evaluations", str(d, "decision_id"), str(d, "reason"), path(evs[i].(map[string]any), "decision") == true)
	}
	if len(evs) != 3 {
		t.Fatalf("evaluations: %d, want 3", len(evs))
	}

	for _, q := range []struct{ endpoint, body string }{
		{"search/subject", `{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`},
		{"search/resource", `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}`},
		{"search/action", `{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}`},
	} {
		v := post(q.endpoint, q.body)
		results, _ := v["results"].([]any)
		if len(results) == 0 {
			t.Fatalf("%s: no results: %v", q.endpoint, v)
		}
		for _, d := range decisions(v, len(results)) {
			add(q.endpoint, str(d, "decision_id"), str(d, "reason"), true) // a search admits what is allowed
		}
	}

	lines, partial := readLog(t, readFile(t, s.Log))
	if len(partial) != 0 || len(lines) != len(want) {
		t.Fatalf("decision log: %d lines + %q, want the %d decisions the answers gave", len(lines), partial, len(want))
	}
	seen := map[string]bool{}
	for i, l := range lines {
		id := l.str("decision_id")
		g, ok := want[id]
		if !ok || seen[id] {
			t.Errorf("line %d: decision %s is not one the answers gave once", i+1, id)
			continue
		}
		seen[id] = true
		var az struct{ Endpoint string }
		json.Unmarshal(l["authzen"], &az)
		effect := map[bool]string{true: "allow", false: "deny"}[g.allow]
		if l.str("effect") != effect || l.str("reason") != g.reason || az.Endpoint != g.endpoint ||
			l.str("policy") != pkg || l.str("policy_digest") != policyDigest || l.str("data_digest") == "" {
			t.Errorf("line %d: %s; want %s %s from %s, package %s %s", i+1, mustMarshal(t, l), effect, g.reason, g.endpoint, pkg, policyDigest)
		}
		for _, m := range []string{"time", "subject", "action", "resource", "context"} {
			if _, ok := l[m]; !ok {
				t.Errorf("line %d: no %s", i+1, m)
			}
		}
	}
	endpoints := map[string]int{}
	for _, g := range want {
		endpoints[g.endpoint]++
	}
	for _, ep := range azEndpoints {
		if endpoints[strings.TrimPrefix(ep, "/access/v1/")] == 0 {
			t.Errorf("no decision of %s was checked", ep)
		}
	}
}

// TestAuthZENLogUnavailable: when the decision log cannot be written, no
// AuthZEN answer gives a decision: 503 decision_log_unavailable, with the
// X-Request-ID echoed, for one evaluation, a batch and a search alike.
func TestAuthZENLogUnavailable(t *testing.T) {
	skipShort(t)
	if !fileExists("/dev/full") {
		t.Skip("no /dev/full to make log writes fail")
	}
	t.Parallel()
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-certification", "--log", "/dev/full")
	for _, q := range []struct{ path, body string }{
		{"/access/v1/evaluation", reqAliceReadRecord1},
		{"/access/v1/evaluations", `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "evaluations": [{"resource": {"type": "record", "id": "record-1"}}]}`},
		{"/access/v1/search/resource", `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}`},
		{"/access/v1/search/action", `{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}`},
		{"/access/v1/search/subject", `{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`},
	} {
		r := s.do("POST", q.path, "application/json", []byte(q.body), "X-Request-ID", "e2e-log-down")
		v := r.JSON(t)
		if r.Status != 503 || str(v, "error.code") != "decision_log_unavailable" || r.Header.Get("X-Request-ID") != "e2e-log-down" {
			t.Errorf("%s: got %d %s (X-Request-ID %q), want 503 decision_log_unavailable", q.path, r.Status, r.Body, r.Header.Get("X-Request-ID"))
		}
		if keys := slices.Sorted(maps.Keys(v)); !slices.Equal(keys, []string{"error"}) {
			t.Errorf("%s: the 503 holds %v besides the error: %s", q.path, keys, r.Body)
		}
	}
}
