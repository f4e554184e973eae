package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The certification harness of the OpenID AuthZEN Authorization API 1.0
// certification scenario (openid/authzen,
// certification/authorization-api-1_0-scenario.md), written from the
// scenario's text: every test of every level, by its id, with the
// scenario's requests, against the real binary serving
// examples/authzen-certification over HTTPS, as a certified PDP is run.
// Levels: Basic, Batch and Search, each Core and Properties, and
// Discovery; the transport requirements (section c-5) are checked on
// every request.

// A certHarness talks to the PDP under test the way the scenario's
// harness does: it discovers the endpoints from the metadata, sends every
// request with an X-Request-ID, and checks the transport on every answer.
type certHarness struct {
	t         *testing.T
	client    *http.Client
	base      string
	endpoints map[string]string // "evaluation", "evaluations", "search/subject", ...
	requests  int
}

// A certAnswer is one answer of the PDP.
type certAnswer struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

// certResult is the outcome of one test of the scenario.
type certResult struct {
	id, level string
	err       error
}

// send posts body to the endpoint (a key of endpoints, or a path) with the
// Content-Type contentType, and checks the transport: X-Request-ID echoed
// (c-2-5-1, c-5 4), and a 200 answer is an application/json object
// (c-5 2).
func (h *certHarness) send(endpoint, contentType, body string, noRequestID bool) (*certAnswer, error) {
	u, ok := h.endpoints[endpoint]
	if !ok {
		u = h.base + endpoint
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	h.requests++
	id := fmt.Sprintf("cert-%d-%08x", h.requests, h.requests*2654435761)
	if !noRequestID {
		req.Header.Set("X-Request-ID", id)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	a := &certAnswer{status: resp.StatusCode, header: resp.Header, body: data}
	if !noRequestID && resp.Header.Get("X-Request-ID") != id {
		return a, fmt.Errorf("X-Request-ID %q not echoed (got %q)", id, resp.Header.Get("X-Request-ID"))
	}
	if a.status == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return a, fmt.Errorf("200 with Content-Type %q, want application/json", ct)
		}
		if err := json.Unmarshal(data, &a.json); err != nil {
			return a, fmt.Errorf("200 body is not a JSON object: %v: %s", err, data)
		}
	}
	return a, nil
}

// post is send with Content-Type: application/json and an X-Request-ID.
func (h *certHarness) post(endpoint, body string) (*certAnswer, error) {
	return h.send(endpoint, "application/json", body, false)
}

// decision checks an Access Evaluation answer: 200, a boolean decision
// (c-2-3-1), a context that is an object when present (c-2-3-2); and,
// when want is not nil, the decision value.
func (a *certAnswer) decision(want *bool) error {
	if a.status != http.StatusOK {
		return fmt.Errorf("status %d, want 200: %s", a.status, a.body)
	}
	return checkDecision(a.json, want)
}

func checkDecision(obj map[string]any, want *bool) error {
	d, ok := obj["decision"].(bool)
	if !ok {
		return fmt.Errorf("decision is %v, want a boolean", obj["decision"])
	}
	if c, present := obj["context"]; present {
		if _, ok := c.(map[string]any); !ok {
			return fmt.Errorf("context is %v, want an object", c)
		}
	}
	if want != nil && d != *want {
		return fmt.Errorf("decision %v, want %v", d, *want)
	}
	return nil
}

// evaluations checks an Access Evaluations answer: 200, an evaluations
// array as long as the request's (c-3-3-1), each a decision (c-3-3-3),
// with the values of want where not nil, in order (c-3-3-2).
func (a *certAnswer) evaluations(want ...*bool) error {
	if a.status != http.StatusOK {
		return fmt.Errorf("status %d, want 200: %s", a.status, a.body)
	}
	evs, ok := a.json["evaluations"].([]any)
	if !ok {
		return fmt.Errorf("evaluations is %v, want an array", a.json["evaluations"])
	}
	if len(evs) != len(want) {
		return fmt.Errorf("%d evaluations, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		obj, ok := ev.(map[string]any)
		if !ok {
			return fmt.Errorf("evaluations[%d] is %v, want an object", i, ev)
		}
		if err := checkDecision(obj, want[i]); err != nil {
			return fmt.Errorf("evaluations[%d]: %w", i, err)
		}
	}
	return nil
}

// results checks a Search answer: 200, a results array (c-4-2-1) of
// entities of the type searched (or of actions, when typ is ""), an
// optional page object with a string next_token (c-4-5-3); it returns the
// ids (names) found.
func (a *certAnswer) results(typ string) ([]string, error) {
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("status %d, want 200: %s", a.status, a.body)
	}
	rs, ok := a.json["results"].([]any)
	if !ok {
		return nil, fmt.Errorf("results is %v, want an array", a.json["results"])
	}
	var ids []string
	for i, r := range rs {
		obj, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("results[%d] is %v, want an object", i, r)
		}
		if typ == "" {
			name, ok := obj["name"].(string)
			if !ok {
				return nil, fmt.Errorf("results[%d] has no name: %v", i, obj)
			}
			ids = append(ids, name)
			continue
		}
		id, idOK := obj["id"].(string)
		t, typeOK := obj["type"].(string)
		if !idOK || !typeOK {
			return nil, fmt.Errorf("results[%d] lacks a type or an id: %v", i, obj)
		}
		if t != typ {
			return nil, fmt.Errorf("results[%d] is of type %q, want %q", i, t, typ)
		}
		ids = append(ids, id)
	}
	if p, present := a.json["page"]; present {
		page, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("page is %v, want an object", p)
		}
		if nt, present := page["next_token"]; present {
			if _, ok := nt.(string); !ok {
				return nil, fmt.Errorf("page.next_token is %v, want a string", nt)
			}
		}
	}
	return ids, nil
}

// includes checks that got holds every one of want.
func includes(got []string, want ...string) error {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return fmt.Errorf("results %v do not include %q", got, w)
		}
	}
	return nil
}

// status checks that the answer has the status want.
func (a *certAnswer) status400() error {
	if a.status != http.StatusBadRequest {
		return fmt.Errorf("status %d, want 400: %s", a.status, a.body)
	}
	return nil
}

var (
	yes         = ptr(true)
	no          = ptr(false)
	anyDecision = (*bool)(nil)
)

func ptr(b bool) *bool { return &b }

// expectDecision sends an Access Evaluation and checks it.
func (h *certHarness) expectDecision(body string, want *bool) error {
	a, err := h.post("evaluation", body)
	if err != nil {
		return err
	}
	return a.decision(want)
}

// expect400 sends body to the endpoint and expects 400.
func (h *certHarness) expect400(endpoint, body string) error {
	a, err := h.post(endpoint, body)
	if err != nil {
		return err
	}
	return a.status400()
}

// expectEvaluations sends an Access Evaluations request and checks it.
func (h *certHarness) expectEvaluations(body string, want ...*bool) error {
	a, err := h.post("evaluations", body)
	if err != nil {
		return err
	}
	return a.evaluations(want...)
}

// expectSearch sends a search and checks that its results include want.
func (h *certHarness) expectSearch(endpoint, typ, body string, want ...string) ([]string, error) {
	a, err := h.post(endpoint, body)
	if err != nil {
		return nil, err
	}
	ids, err := a.results(typ)
	if err != nil {
		return nil, err
	}
	return ids, includes(ids, want...)
}

// all runs checks in order and returns the first failure.
func all(checks ...func() error) error {
	for i, c := range checks {
		if err := c(); err != nil {
			return fmt.Errorf("check %d: %w", i+1, err)
		}
	}
	return nil
}

// The fixture's requests (c-2-2 and on), as the scenario writes them.
const (
	reqAliceReadRecord1 = `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`
	reqBobWriteRecord1  = `{"subject": {"type": "user", "id": "bob"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-1"}}`
	ctxTimeIP           = `"context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}`
)

// certCases returns every test of the scenario, with its id and level.
func certCases(h *certHarness) []certResult {
	type tc struct {
		id, level string
		run       func() error
	}
	const (
		basicCore   = "Basic Core"
		basicProps  = "Basic Properties"
		batchCore   = "Batch Core"
		batchProps  = "Batch Properties"
		searchCore  = "Search Core"
		searchProps = "Search Properties"
		discovery   = "Discovery"
	)
	search := func(endpoint, typ, body string, want ...string) func() error {
		return func() error { _, err := h.expectSearch(endpoint, typ, body, want...); return err }
	}
	// sameAs checks that a search gives the same result set as another.
	sameAs := func(endpoint, typ, body, reference string) func() error {
		return func() error {
			ref, err := h.expectSearch(endpoint, typ, reference)
			if err != nil {
				return err
			}
			got, err := h.expectSearch(endpoint, typ, body)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, ref) {
				return fmt.Errorf("results %v, want %v as without it", got, ref)
			}
			return nil
		}
	}
	cases := []tc{
		// Basic Core.
		{"c-2-2-1", basicCore, func() error { return h.expectDecision(reqAliceReadRecord1, yes) }},
		{"c-2-2-2", basicCore, func() error { return h.expectDecision(reqBobWriteRecord1, no) }},
		{"c-2-2-3", basicCore, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, `+ctxTimeIP+`}`, yes)
		}},
		{"c-2-2-8", basicCore, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
				"action": {"name": "read", "properties": {"method": "GET"}},
				"resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}}}`, yes)
		}},
		{"c-2-2-9", basicCore, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "foo": "bar", "futureField": {"nested": true}}`, yes)
		}},
		{"c-2-3", basicCore, func() error {
			// The decision is a boolean; a context, when present, an object.
			a, err := h.post("evaluation", reqBobWriteRecord1)
			if err != nil {
				return err
			}
			return a.decision(anyDecision)
		}},
		{"c-2-4", basicCore, func() error {
			eval := func(body string) func() error { return func() error { return h.expect400("evaluation", body) } }
			return all(
				// c-2-4-1: missing subject, action, resource.
				eval(`{"action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`),
				eval(`{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}`),
				eval(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}}`),
				// c-2-4-2: missing sub-fields.
				eval(`{"subject": {"id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`),
				eval(`{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`),
				eval(`{"subject": {"type": "user", "id": "alice"}, "action": {}, "resource": {"type": "record", "id": "record-1"}}`),
				eval(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"id": "record-1"}}`),
				eval(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}`),
				// c-2-4-3: a Content-Type that is not application/json.
				func() error {
					a, err := h.send("evaluation", "text/plain", reqAliceReadRecord1, false)
					if err != nil {
						return err
					}
					return a.status400()
				},
				// c-2-4-4: malformed JSON; c-2-4-5: an empty body.
				eval(`{"subject": {"type": "user", "id": "alice"`),
				eval(``),
				// c-2-4-6: fields of the wrong type.
				eval(`{"subject": "alice", "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`),
				eval(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": 123}, "resource": {"type": "record", "id": "record-1"}}`),
			)
		}},
		{"c-2-5", basicCore, func() error {
			// c-2-5-1 is checked on every request; c-2-5-2: without an
			// X-Request-ID the PDP does not fail.
			a, err := h.send("evaluation", "application/json", reqAliceReadRecord1, true)
			if err != nil {
				return err
			}
			return a.decision(yes)
		}},
		{"c-2-6", basicCore, func() error {
			for range 5 {
				if err := h.expectDecision(reqAliceReadRecord1, yes); err != nil {
					return err
				}
				if err := h.expectDecision(reqBobWriteRecord1, no); err != nil {
					return err
				}
			}
			return nil
		}},

		// Basic Properties.
		{"c-2-2-4", basicProps, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}`, no)
		}},
		{"c-2-2-5", basicProps, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}`, yes)
		}},
		{"c-2-2-6", basicProps, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "delete", "properties": {"soft": true}}, "resource": {"type": "record", "id": "record-1"}}`, yes)
		}},
		{"c-2-2-7", basicProps, func() error {
			return h.expectDecision(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "delete", "properties": {"soft": false}}, "resource": {"type": "record", "id": "record-1"}}`, no)
		}},

		// Batch Core.
		{"c-3-2-1", batchCore, func() error {
			return h.expectEvaluations(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
				"evaluations": [{"resource": {"type": "record", "id": "record-1"}}, {"resource": {"type": "record", "id": "record-2"}}]}`, anyDecision, anyDecision)
		}},
		{"c-3-2-2", batchCore, func() error {
			return h.expectEvaluations(`{"subject": {"type": "user", "id": "bob"}, "resource": {"type": "record", "id": "record-1"},
				"evaluations": [{"action": {"name": "read"}}, {"action": {"name": "write"}}]}`, yes, no)
		}},
		{"c-3-2-5", batchCore, func() error {
			return h.expectEvaluations(`{"evaluations": [
				{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}},
				{"subject": {"type": "user", "id": "bob"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-1"}}]}`, yes, no)
		}},
		{"c-3-2-6", batchCore, func() error {
			return h.expectEvaluations(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "context": {"time": "2025-06-27T18:03-07:00"},
				"evaluations": [{"resource": {"type": "record", "id": "record-1"}},
				{"resource": {"type": "record", "id": "record-2"}, "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"}}]}`, anyDecision, anyDecision)
		}},
		{"c-3-3", batchCore, func() error {
			// Length, order and decisions are checked by evaluations; a
			// top-level decision, if any, is ignored.
			return h.expectEvaluations(`{"evaluations": [
				{"subject": {"type": "user", "id": "bob"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-1"}},
				{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}},
				{"subject": {"type": "user", "id": "bob"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}]}`, no, yes, yes)
		}},
		{"c-3-4", batchCore, func() error {
			return all(
				// c-3-4-1: an item without its resource, under execute_all.
				func() error {
					return h.expectEvaluations(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
						"options": {"evaluations_semantic": "execute_all"},
						"evaluations": [{"resource": {"type": "record", "id": "record-1"}}, {}]}`, yes, no)
				},
				// c-3-4-2: no evaluations: a single evaluation.
				func() error {
					a, err := h.post("evaluations", reqAliceReadRecord1)
					if err != nil {
						return err
					}
					return a.decision(yes)
				},
				// c-3-4-3: empty evaluations: the same.
				func() error {
					a, err := h.post("evaluations", `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "evaluations": []}`)
					if err != nil {
						return err
					}
					return a.decision(yes)
				},
			)
		}},

		// Batch Properties.
		{"c-3-2-3", batchProps, func() error {
			return h.expectEvaluations(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"},
				"evaluations": [{"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}},
				{"resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}]}`, yes, no)
		}},
		{"c-3-2-4", batchProps, func() error {
			return h.expectEvaluations(`{"action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}},
				"evaluations": [{"subject": {"type": "user", "id": "alice"}}, {"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}}]}`, no, yes)
		}},
		{"c-3-2-7", batchProps, func() error {
			return h.expectEvaluations(`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"},
				"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}},
				"evaluations": [{}, {"resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}]}`, yes, no)
		}},

		// Search Core.
		{"c-4-2-1", searchCore, search("search/subject", "user", `{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`, "alice", "bob")},
		{"c-4-2-2", searchCore, sameAs("search/subject", "user",
			`{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, `+ctxTimeIP+`}`,
			`{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`)},
		{"c-4-2-3", searchCore, sameAs("search/subject", "user",
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`,
			`{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`)},
		{"c-4-3-1", searchCore, search("search/resource", "record", `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}`, "record-1")},
		{"c-4-3-2", searchCore, sameAs("search/resource", "record",
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}, `+ctxTimeIP+`}`,
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}`)},
		{"c-4-3-3", searchCore, sameAs("search/resource", "record",
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`,
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}`)},
		{"c-4-4-1", searchCore, search("search/action", "", `{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}`, "read", "write")},
		{"c-4-4-2", searchCore, sameAs("search/action", "",
			`{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}, `+ctxTimeIP+`}`,
			`{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}`)},
		{"c-4-5", searchCore, func() error {
			// c-4-5-1: a page limit; c-4-5-2: the token, sent back alone.
			const query = `"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}`
			a, err := h.post("search/subject", `{`+query+`, "page": {"limit": 1}}`)
			if err != nil {
				return err
			}
			ids, err := a.results("user")
			if err != nil {
				return err
			}
			seen := ids
			for range 10 {
				page, _ := a.json["page"].(map[string]any)
				next, _ := page["next_token"].(string)
				if next == "" {
					return includes(seen, "alice", "bob")
				}
				if a, err = h.post("search/subject", `{`+query+`, "page": {"token": "`+next+`"}}`); err != nil {
					return err
				}
				if ids, err = a.results("user"); err != nil {
					return err
				}
				page, ok := a.json["page"].(map[string]any)
				if !ok {
					return fmt.Errorf("an answer to a token has no page object: %s", a.body)
				}
				if _, ok := page["next_token"].(string); !ok {
					return fmt.Errorf("an answer to a token has no string next_token: %s", a.body)
				}
				seen = append(seen, ids...)
			}
			return fmt.Errorf("no last page after 10 pages: %v", seen)
		}},
		{"c-4-6", searchCore, func() error {
			empty := func(endpoint, typ, body string) func() error {
				return func() error {
					ids, err := h.expectSearch(endpoint, typ, body)
					if err == nil && len(ids) != 0 {
						err = fmt.Errorf("results %v, want none", ids)
					}
					return err
				}
			}
			return all(
				// c-4-6-1: an unknown entity identifier, at each endpoint.
				empty("search/action", "", `{"subject": {"type": "user", "id": "nonexistent-user"}, "resource": {"type": "record", "id": "record-1"}}`),
				empty("search/subject", "user", `{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "nonexistent-record"}}`),
				empty("search/resource", "record", `{"subject": {"type": "user", "id": "nonexistent-user"}, "action": {"name": "read"}, "resource": {"type": "record"}}`),
				// c-4-6-2: an unknown entity type, at each endpoint.
				empty("search/subject", "spaceship", `{"subject": {"type": "spaceship"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}`),
				empty("search/resource", "spaceship", `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "spaceship"}}`),
				empty("search/action", "", `{"subject": {"type": "spaceship", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}`),
			)
		}},
		{"c-4-7", searchCore, func() error {
			return all(
				// c-4-7-1: missing required fields.
				func() error {
					return h.expect400("search/subject", `{"subject": {"type": "user"}, "resource": {"type": "record", "id": "record-1"}}`)
				},
				func() error {
					return h.expect400("search/resource", `{"action": {"name": "read"}, "resource": {"type": "record"}}`)
				},
				func() error { return h.expect400("search/action", `{"subject": {"type": "user", "id": "alice"}}`) },
				// c-4-7-2: missing required sub-fields of an input entity.
				func() error {
					return h.expect400("search/subject", `{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record"}}`)
				},
				func() error {
					return h.expect400("search/resource", `{"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record"}}`)
				},
				func() error {
					return h.expect400("search/action", `{"subject": {"type": "user"}, "resource": {"type": "record", "id": "record-1"}}`)
				},
			)
		}},

		// Search Properties.
		{"c-4-2-4", searchProps, search("search/subject", "user", `{"subject": {"type": "user"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}`, "bob")},
		{"c-4-3-4", searchProps, search("search/resource", "record", `{"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}, "action": {"name": "write"}, "resource": {"type": "record"}}`, "record-2")},
		{"c-4-4-3", searchProps, search("search/action", "", `{"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}`, "write")},

		// Discovery.
		{"c-6", discovery, h.discovery},
	}
	out := make([]certResult, len(cases))
	for i, c := range cases {
		out[i] = certResult{id: c.id, level: c.level, err: c.run()}
	}
	return out
}

// discover reads the PDP metadata at base, as the harness does before the
// other levels, and returns the endpoints it names; without metadata (404)
// the default paths (c-6-6).
func discover(client *http.Client, base string) (map[string]string, error) {
	eps := map[string]string{}
	keys := map[string]string{
		"evaluation": "access_evaluation_endpoint", "evaluations": "access_evaluations_endpoint",
		"search/subject": "search_subject_endpoint", "search/resource": "search_resource_endpoint", "search/action": "search_action_endpoint",
	}
	for ep := range keys {
		eps[ep] = base + "/access/v1/" + ep
	}
	resp, err := client.Get(base + "/.well-known/authzen-configuration")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return eps, nil
	}
	var meta map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		return nil, err
	}
	for ep, key := range keys {
		if u, ok := meta[key].(string); ok {
			eps[ep] = u
		}
	}
	return eps, nil
}

// discovery is c-6: the metadata endpoint answers 200 with JSON, its
// policy_decision_point is the base URL discovery used, and every
// endpoint it names is an HTTPS URL; capabilities, if any, are strings.
func (h *certHarness) discovery() error {
	resp, err := h.client.Get(h.base + "/.well-known/authzen-configuration")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, want 200: %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	var meta map[string]any
	if err := json.Unmarshal(data, &meta); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if pdp, _ := meta["policy_decision_point"].(string); pdp != h.base {
		return fmt.Errorf("policy_decision_point %q, want the base URL %q", pdp, h.base)
	}
	if _, ok := meta["access_evaluation_endpoint"]; !ok {
		return fmt.Errorf("no access_evaluation_endpoint")
	}
	for _, key := range []string{"access_evaluation_endpoint", "access_evaluations_endpoint", "search_subject_endpoint", "search_resource_endpoint", "search_action_endpoint"} {
		v, present := meta[key]
		if !present {
			continue
		}
		s, _ := v.(string)
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%s %v is not an HTTPS URL", key, v)
		}
	}
	if caps, present := meta["capabilities"]; present {
		list, ok := caps.([]any)
		if !ok {
			return fmt.Errorf("capabilities %v is not an array", caps)
		}
		for _, c := range list {
			if _, ok := c.(string); !ok {
				return fmt.Errorf("capabilities holds %v, not a string", c)
			}
		}
	}
	if _, present := meta["signed_metadata"]; present {
		return fmt.Errorf("signed_metadata is present, and this harness does not verify signatures")
	}
	return nil
}

// TestAuthZENCertification runs the certification scenario against
// `flex-auth serve --package examples/authzen-certification` over HTTPS,
// and reports its results by level, as a certification does.
func TestAuthZENCertification(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ca := newPKI(t, "e2e-authzen-ca")
	client := ca.httpClient(t, nil)
	s := newServer(t)
	s.startTLS(t, client, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-certification",
		"--tls-cert", ca.ServerCert, "--tls-key", ca.ServerKey, "--log", s.Log)
	eps, err := discover(client, s.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	h := &certHarness{t: t, client: client, base: s.URL, endpoints: eps}
	results := certCases(h)

	levels := []string{"Basic Core", "Basic Properties", "Batch Core", "Batch Properties", "Search Core", "Search Properties", "Discovery"}
	var report bytes.Buffer
	fmt.Fprintf(&report, "AuthZEN 1.0 certification scenario, %d requests:\n", h.requests)
	for _, level := range levels {
		t.Run(strings.ReplaceAll(level, " ", ""), func(t *testing.T) {
			passed, total := 0, 0
			for _, r := range results {
				if r.level != level {
					continue
				}
				total++
				if r.err != nil {
					t.Errorf("%s: %v", r.id, r.err)
					continue
				}
				passed++
			}
			if total == 0 {
				t.Fatalf("no test for level %s", level)
			}
			fmt.Fprintf(&report, "  %-17s %d/%d passed\n", level, passed, total)
		})
	}
	t.Log(report.String())
	// Every decision of the run was logged.
	data, err := os.ReadFile(s.Log)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n < 50 {
		t.Errorf("decision log: %d lines, want every decision of the run", n)
	}
}
