package serve

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzAuthZEN sends arbitrary bodies to every AuthZEN endpoint of a server
// with a registry and an entities package: the answer is never a 500 and
// never a panic; an answer of 200 is JSON of the endpoint's shape; every
// decision it gives is in the decision log, as one valid JSON line, and
// every line of the log is one.
func FuzzAuthZEN(f *testing.F) {
	for _, s := range []string{
		evalBody(alice, read, record1),
		evalBody(`{"type":"iam","id":"iam:agt-state-hub-bridge","properties":{"a":[1,{"b":null}]}}`, `{"name":"ssh.sign"}`, `{"type":"actor","id":"agt-state-hub-bridge"}`),
		`{"subject":` + alice + `,"action":` + read + `,"context":{"x":"\u2028"},"evaluations":[{"resource":` + record1 + `},{},3,null]}`,
		`{"subject":` + bob + `,"evaluations":[{"action":` + write + `,"resource":` + record2 + `}],"options":{"evaluations_semantic":"deny_on_first_deny"}}`,
		`{"subject":{"type":"user"},"action":` + read + `,"resource":` + record1 + `,"page":{"limit":1,"token":""}}`,
		`{"subject":` + alice + `,"resource":{"type":"record"},"page":{"token":"AUw-vN4DvvcOAAFhbGljZQ"}}`,
		`{"subject":{"type":"user","id":"a","type":"b"}}`, `[]`, `{`, `{"subject":"\ud800"}`, "{\"a\":\"\xff\"}",
	} {
		for ep := range numEndpoints {
			f.Add(uint8(ep), []byte(s))
		}
	}
	log := &lineChecker{}
	s := newPackagesServer(f, log, Options{}, certPackage, opsPackage)
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		path := endpointPaths[int(ep)%int(numEndpoints)]
		w := do(s, http.MethodPost, path, string(body), "application/json", nil)
		switch w.Code {
		case http.StatusOK:
			var answer struct {
				Decision    *bool             `json:"decision"`
				Evaluations []json.RawMessage `json:"evaluations"`
				Results     []json.RawMessage `json:"results"`
				Context     struct {
					DecisionID string            `json:"decision_id"`
					Decisions  []json.RawMessage `json:"decisions"`
				} `json:"context"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
				t.Fatalf("200 body %q does not parse: %v", w.Body, err)
			}
			switch {
			case answer.Decision != nil:
				var logged struct {
					DecisionID string `json:"decision_id"`
				}
				if p := log.last.Load(); p == nil || json.Unmarshal(*p, &logged) != nil || logged.DecisionID != answer.Context.DecisionID {
					t.Fatalf("answered %s, but the last decision log line is %s", w.Body, derefLine(log.last.Load()))
				}
			case answer.Evaluations != nil:
				if len(answer.Context.Decisions) != len(answer.Evaluations) {
					t.Fatalf("%d decisions for %d evaluations: %s", len(answer.Context.Decisions), len(answer.Evaluations), w.Body)
				}
			case answer.Results != nil:
				if len(answer.Context.Decisions) != len(answer.Results) {
					t.Fatalf("%d decisions for %d results: %s", len(answer.Context.Decisions), len(answer.Results), w.Body)
				}
			default:
				t.Fatalf("200 without a decision, evaluations or results: %s", w.Body)
			}
		case http.StatusBadRequest:
			decodeError(t, w, 400, "invalid_request")
		case http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if bad := log.bad.Load(); bad != nil {
			t.Fatalf("decision log line is not one JSON line: %q", *bad)
		}
	})
}
