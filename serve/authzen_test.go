package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The example packages, as package directories.
const (
	certPackage = "../examples/authzen-certification"
	todoPackage = "../examples/authzen-todo"
	opsPackage  = "../examples/ops-warden"
	rick        = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	morty       = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
)

// newPackagesServer serves the package directories dirs, logging to log.
func newPackagesServer(t testing.TB, log io.Writer, opts Options, dirs ...string) *Server {
	t.Helper()
	for _, d := range dirs {
		opts.Packages = append(opts.Packages, Source{Package: d})
	}
	opts.DecisionLog, opts.Clock, opts.LogTimeout = log, fixedClock, time.Minute
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// az posts body to an AuthZEN path as JSON, with an X-Request-ID.
func az(h http.Handler, path, body string) *httptest.ResponseRecorder {
	return do(h, http.MethodPost, path, body, "application/json", http.Header{"X-Request-Id": {"req-1"}})
}

// decision is a decoded single evaluation answer.
type decision struct {
	Decision *bool `json:"decision"`
	Context  struct {
		DecisionID string `json:"decision_id"`
		Reason     string `json:"reason"`
		Grant      *struct {
			Principal string `json:"principal"`
			TTLHours  int64  `json:"ttl_hours"`
		} `json:"grant"`
		Error *struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"context"`
}

func decodeJSON[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if w.Code != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer %s: %v", w.Body, err)
	}
	return v
}

const (
	alice    = `{"type":"user","id":"alice"}`
	bob      = `{"type":"user","id":"bob"}`
	record1  = `{"type":"record","id":"record-1"}`
	record2  = `{"type":"record","id":"record-2"}`
	read     = `{"name":"read"}`
	write    = `{"name":"write"}`
	evalPath = "/access/v1/evaluation"
)

func evalBody(sub, act, res string) string {
	return `{"subject":` + sub + `,"action":` + act + `,"resource":` + res + `}`
}

func TestAuthZENEvaluation(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, certPackage)
	tests := []struct {
		name   string
		body   string
		allow  bool
		reason string
	}{
		{"permit", evalBody(alice, read, record1), true, "record_read"},
		{"deny", evalBody(bob, write, record1), false, "not_permitted"},
		{"request properties", evalBody(alice, write, `{"type":"record","id":"record-1","properties":{"status":"archived"}}`), false, "record_archived"},
		{"unknown members are ignored, at every level", `{"subject":{"type":"user","id":"alice","x":[1,{"y":null}]},"action":{"name":"read","id":7},
			"resource":{"type":"record","id":"record-1","name":"n"},"foo":"bar","futureField":{"nested":true}}`, true, "record_read"},
		{"null is absent", `{"subject":{"type":"user","id":"alice","properties":null},"action":{"name":"read","properties":null},"resource":` + record1 + `,"context":null,"options":null}`, true, "record_read"},
		{"with a context", `{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `,"context":{"time":"2025-06-27T18:03-07:00","ip":"192.168.1.1"}}`, true, "record_read"},
		{"unknown subject", evalBody(`{"type":"user","id":"carol"}`, read, record1), false, "unknown_subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := az(s, evalPath, tt.body)
			if got := w.Header().Get("X-Request-Id"); got != "req-1" {
				t.Errorf("X-Request-ID: got %q, want req-1", got)
			}
			d := decodeJSON[decision](t, w)
			if d.Decision == nil || *d.Decision != tt.allow || d.Context.Reason != tt.reason || !decisionIDPattern.MatchString(d.Context.DecisionID) {
				t.Errorf("got %s, want decision %v reason %s", w.Body, tt.allow, tt.reason)
			}
		})
	}
	if got, want := len(log.lines(t)), len(tests); got != want {
		t.Errorf("decision log: %d lines, want %d", got, want)
	}
}

func TestAuthZENBadRequests(t *testing.T) {
	s := newPackagesServer(t, &syncBuffer{}, Options{}, certPackage)
	big := `{"subject":{"type":"user","id":"alice","properties":{"x":"` + strings.Repeat("a", MaxRequestBytes) + `"}},"action":{"name":"read"},"resource":` + record1 + `}`
	tests := []struct {
		name        string
		path, ctype string
		method      string
		body        string
		status      int
		msg         string
	}{
		{"missing subject", evalPath, "", "", `{"action":` + read + `,"resource":` + record1 + `}`, 400, `"subject" is required`},
		{"missing action", evalPath, "", "", `{"subject":` + alice + `,"resource":` + record1 + `}`, 400, `"action" is required`},
		{"missing resource", evalPath, "", "", `{"subject":` + alice + `,"action":` + read + `}`, 400, `"resource" is required`},
		{"subject without type", evalPath, "", "", evalBody(`{"id":"alice"}`, read, record1), 400, `subject.type is required`},
		{"subject without id", evalPath, "", "", evalBody(`{"type":"user"}`, read, record1), 400, `subject.id is required`},
		{"action without name", evalPath, "", "", evalBody(alice, `{}`, record1), 400, `action.name is required`},
		{"resource without type", evalPath, "", "", evalBody(alice, read, `{"id":"record-1"}`), 400, `resource.type is required`},
		{"resource without id", evalPath, "", "", evalBody(alice, read, `{"type":"record"}`), 400, `resource.id is required`},
		{"empty id", evalPath, "", "", evalBody(`{"type":"user","id":""}`, read, record1), 400, `subject.id must not be empty`},
		{"subject is a string", evalPath, "", "", evalBody(`"alice"`, read, record1), 400, `"subject" must be an object, got a string`},
		{"action name is a number", evalPath, "", "", evalBody(alice, `{"name":123}`, record1), 400, `action.name must be a string, got a number`},
		{"properties is a list", evalPath, "", "", evalBody(`{"type":"user","id":"alice","properties":[1]}`, read, record1), 400, `subject.properties must be an object, got an array`},
		{"context is a list", evalPath, "", "", `{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `,"context":[]}`, 400, `"context" must be an object, got an array`},
		{"not an object", evalPath, "", "", `[1]`, 400, `request body must be a JSON object`},
		{"empty body", evalPath, "", "", ``, 400, `request body is empty`},
		{"malformed", evalPath, "", "", `{"subject":`, 400, `invalid JSON`},
		{"trailing data", evalPath, "", "", evalBody(alice, read, record1) + `{}`, 400, `trailing data`},
		{"duplicate member", evalPath, "", "", `{"subject":` + alice + `,"subject":` + bob + `,"action":` + read + `,"resource":` + record1 + `}`, 400, `duplicate member "subject"`},
		{"duplicate in an unknown member", evalPath, "", "", `{"x":{"a":1,"a":2},"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `}`, 400, `duplicate`},
		{"duplicate in properties", evalPath, "", "", evalBody(`{"type":"user","id":"alice","properties":{"a":1,"\u0061":2}}`, read, record1), 400, `duplicate key "a"`},
		{"invalid UTF-8", evalPath, "", "", evalBody(`{"type":"user","id":"al`+"\xff"+`ice"}`, read, record1), 400, `invalid request at byte`},
		{"text/plain", evalPath, "text/plain", "", evalBody(alice, read, record1), 400, `Content-Type must be application/json`},
		{"too large", evalPath, "", "", big, 413, `over 65536 bytes`},
		{"GET", evalPath, "", "GET", ``, 405, `use POST`},
		{"bad semantic", "/access/v1/evaluations", "", "", `{"evaluations":[{}],"options":{"evaluations_semantic":"some"}}`, 400, `options.evaluations_semantic must be execute_all, deny_on_first_deny or permit_on_first_permit, got "some"`},
		{"evaluations not an array", "/access/v1/evaluations", "", "", `{"evaluations":{}}`, 400, `"evaluations" must be an array, got an object`},
		{"a default of the wrong kind", "/access/v1/evaluations", "", "", `{"subject":"alice","evaluations":[{}]}`, 400, `"subject" must be an object, got a string`},
		{"too many evaluations", "/access/v1/evaluations", "", "", `{"evaluations":[` + strings.Repeat(`{},`, MaxEvaluations) + `{}]}`, 400, `more than 1000 evaluations`},
		{"bad limit", "/access/v1/search/subject", "", "", `{"subject":{"type":"user"},"action":` + read + `,"resource":` + record1 + `,"page":{"limit":-1}}`, 400, `page.limit must be an integer from 0 to 1000, got "-1"`},
		{"bad token", "/access/v1/search/subject", "", "", `{"subject":{"type":"user"},"action":` + read + `,"resource":` + record1 + `,"page":{"token":"nope"}}`, 400, `page.token is not a token this server gave`},
		{"unknown path", "/access/v1/evaluate", "", "", `{}`, 404, `no such endpoint`},
		{"unknown package", "/no/such/access/v1/evaluation", "", "", evalBody(alice, read, record1), 404, `no such endpoint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctype, method := orString(tt.ctype, "application/json"), orString(tt.method, http.MethodPost)
			w := do(s, method, tt.path, tt.body, ctype, http.Header{"X-Request-Id": {"req-2"}})
			if w.Code != tt.status || !strings.Contains(errorMessage(w), tt.msg) {
				t.Errorf("got %d %s, want %d with %q", w.Code, w.Body, tt.status, tt.msg)
			}
			if got := w.Header().Get("X-Request-Id"); got != "req-2" {
				t.Errorf("X-Request-ID: got %q, want req-2", got)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Errorf("error envelope: %s (%v)", w.Body, err)
			}
		})
	}
}

// batchAnswer is a decoded evaluations answer.
type batchAnswer struct {
	Evaluations []decision `json:"evaluations"`
	Context     struct {
		Decisions []json.RawMessage `json:"decisions"`
	} `json:"context"`
}

func TestAuthZENBatch(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, certPackage)
	const path = "/access/v1/evaluations"
	tests := []struct {
		name string
		body string
		want []string // "true", "false", or "error: message"
	}{
		{"defaults", `{"subject":` + bob + `,"resource":` + record1 + `,"evaluations":[{"action":` + read + `},{"action":` + write + `}]}`, []string{"true", "false"}},
		{"no defaults", `{"evaluations":[{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `},{"subject":` + bob + `,"action":` + write + `,"resource":` + record1 + `}]}`, []string{"true", "false"}},
		{"whole-entity override", `{"subject":` + alice + `,"action":` + write + `,"resource":{"type":"record","id":"record-1","properties":{"status":"active"}},"evaluations":[{},{"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}]}`, []string{"true", "false"}},
		{"subject properties per item", `{"action":` + write + `,"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}},"evaluations":[{"subject":` + alice + `},{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}}}]}`, []string{"false", "true"}},
		{"an invalid item", `{"subject":` + alice + `,"action":` + read + `,"options":{"evaluations_semantic":"execute_all"},"evaluations":[{"resource":` + record1 + `},{},3]}`,
			[]string{"true", `error: "resource" is required`, "error: the evaluation must be an object, got a number"}},
		{"an empty default is fine unless used", `{"subject":` + alice + `,"action":` + read + `,"resource":{},"context":{},"evaluations":[{"resource":` + record1 + `},{}]}`,
			[]string{"true", "error: resource.type is required"}},
		{"deny on first deny", `{"subject":` + alice + `,"action":` + write + `,"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"resource":` + record1 + `},{"resource":` + record2 + `},{"resource":` + record1 + `}]}`, []string{"true", "false"}},
		{"deny on first failure", `{"subject":` + alice + `,"action":` + read + `,"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"resource":` + record1 + `},{},{"resource":` + record1 + `}]}`, []string{"true", `error: "resource" is required`}},
		{"permit on first permit", `{"subject":` + alice + `,"action":` + write + `,"options":{"evaluations_semantic":"permit_on_first_permit"},"evaluations":[{"resource":` + record2 + `},{"resource":` + record1 + `},{"resource":` + record2 + `}]}`, []string{"false", "true"}},
		{"context inheritance", `{"subject":` + alice + `,"action":` + read + `,"context":{"time":"t1"},"evaluations":[{"resource":` + record1 + `},{"resource":` + record2 + `,"context":{"time":"t2"}}]}`, []string{"true", "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(log.lines(t))
			writes := log.writesNow()
			a := decodeJSON[batchAnswer](t, az(s, path, tt.body))
			var got []string
			decided := 0
			for i, d := range a.Evaluations {
				if e := d.Context.Error; e != nil {
					if *d.Decision || e.Status != 400 {
						t.Errorf("item %d: an error must be a deny with status 400: %+v", i, d)
					}
					got = append(got, "error: "+e.Message)
					continue
				}
				if d.Context.DecisionID != "" || d.Context.Reason != "" {
					t.Errorf("item %d carries a context: clients that compare the evaluations must see only decision", i)
				}
				got = append(got, map[bool]string{true: "true", false: "false"}[*d.Decision])
				decided++
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if len(a.Context.Decisions) != len(a.Evaluations) {
				t.Fatalf("context.decisions: %d entries for %d evaluations", len(a.Context.Decisions), len(a.Evaluations))
			}
			lines := log.lines(t)[before:]
			if len(lines) != decided {
				t.Fatalf("decision log: %d lines for %d decisions", len(lines), decided)
			}
			if decided > 0 && log.writesNow()-writes != 1 {
				t.Errorf("the batch's lines took %d writes, want one", log.writesNow()-writes)
			}
			k := 0
			for i, raw := range a.Context.Decisions {
				var c struct {
					DecisionID string `json:"decision_id"`
					Reason     string `json:"reason"`
				}
				json.Unmarshal(raw, &c)
				if a.Evaluations[i].Context.Error != nil {
					continue
				}
				line := lines[k]
				k++
				authzen := line["authzen"].(map[string]any)
				if line["decision_id"] != c.DecisionID || line["reason"] != c.Reason || authzen["endpoint"] != "evaluations" ||
					authzen["index"] != float64(i) || authzen["batch"] != lines[0]["authzen"].(map[string]any)["batch"] {
					t.Errorf("line %d %v does not match decision %d %s", k, line, i, raw)
				}
			}
		})
	}
	// Without evaluations, or with none, the endpoint answers as the
	// single evaluation does.
	for _, body := range []string{evalBody(alice, read, record1), `{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `,"evaluations":[]}`} {
		d := decodeJSON[decision](t, az(s, path, body))
		if d.Decision == nil || !*d.Decision || d.Context.Reason != "record_read" {
			t.Errorf("%s: got %+v, want a single permit", body, d)
		}
	}
}

func TestAuthZENBatchExpanded(t *testing.T) {
	s := newPackagesServer(t, &syncBuffer{}, Options{}, certPackage)
	ctx := `{"x":"` + strings.Repeat("a", 30<<10) + `"}`
	body := `{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `,"context":` + ctx + `,"evaluations":[` + strings.Repeat(`{},`, 40) + `{}]}`
	if w := az(s, "/access/v1/evaluations", body); w.Code != 413 || !strings.Contains(w.Body.String(), "with their defaults filled in") {
		t.Errorf("got %d %s, want 413", w.Code, w.Body)
	}
}

// searchAnswer is a decoded search answer.
type searchAnswer struct {
	Page *struct {
		NextToken *string `json:"next_token"`
		Count     *int    `json:"count"`
	} `json:"page"`
	Results []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"results"`
	Context struct {
		Decisions []struct {
			DecisionID string `json:"decision_id"`
			Reason     string `json:"reason"`
		} `json:"decisions"`
	} `json:"context"`
}

func (a searchAnswer) ids() []string {
	var ids []string
	for _, r := range a.Results {
		ids = append(ids, r.Type+":"+r.ID+r.Name)
	}
	return ids
}

func TestAuthZENSearch(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, certPackage)
	tests := []struct {
		name, path, body string
		want             []string
	}{
		{"subjects", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":` + read + `,"resource":` + record1 + `}`, []string{"user:alice", "user:bob"}},
		{"a subject id is ignored", "/access/v1/search/subject", `{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `}`, []string{"user:alice", "user:bob"}},
		{"subjects by properties", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":` + write + `,"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`, []string{"user:bob"}},
		{"resources", "/access/v1/search/resource", `{"subject":` + alice + `,"action":` + read + `,"resource":{"type":"record"}}`, []string{"record:record-1", "record:record-2"}},
		{"a resource id is ignored", "/access/v1/search/resource", `{"subject":` + alice + `,"action":` + read + `,"resource":` + record1 + `}`, []string{"record:record-1", "record:record-2"}},
		{"resources by subject properties", "/access/v1/search/resource", `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":` + write + `,"resource":{"type":"record"}}`, []string{"record:record-2"}},
		{"actions", "/access/v1/search/action", `{"subject":` + alice + `,"resource":` + record1 + `}`, []string{":read", ":write"}},
		{"an action given is ignored", "/access/v1/search/action", `{"subject":` + alice + `,"action":{"name":"delete"},"resource":` + record1 + `}`, []string{":read", ":write"}},
		{"unknown subject", "/access/v1/search/action", `{"subject":{"type":"user","id":"nonexistent-user"},"resource":` + record1 + `}`, nil},
		{"unknown type", "/access/v1/search/subject", `{"subject":{"type":"spaceship"},"action":` + read + `,"resource":` + record1 + `}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(log.lines(t))
			w := az(s, tt.path, tt.body)
			if !strings.Contains(w.Body.String(), `"results":[`) {
				t.Errorf("results must be an array, even empty: %s", w.Body)
			}
			a := decodeJSON[searchAnswer](t, w)
			if !slices.Equal(a.ids(), tt.want) || a.Page != nil {
				t.Errorf("got %s, want %v and no page", w.Body, tt.want)
			}
			lines := log.lines(t)[before:]
			if len(lines) != len(a.Results) || len(a.Context.Decisions) != len(a.Results) {
				t.Fatalf("%d results, %d decisions, %d log lines", len(a.Results), len(a.Context.Decisions), len(lines))
			}
			for i, line := range lines {
				if line["decision_id"] != a.Context.Decisions[i].DecisionID || line["effect"] != "allow" {
					t.Errorf("line %d: %v, want decision %+v", i, line, a.Context.Decisions[i])
				}
			}
		})
	}
	for _, tt := range []struct{ name, path, body, msg string }{
		{"subject search without action", "/access/v1/search/subject", `{"subject":{"type":"user"},"resource":` + record1 + `}`, `"action" is required`},
		{"resource search without subject", "/access/v1/search/resource", `{"action":` + read + `,"resource":{"type":"record"}}`, `"subject" is required`},
		{"action search without resource", "/access/v1/search/action", `{"subject":` + alice + `}`, `"resource" is required`},
		{"subject search: the resource needs an id", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":` + read + `,"resource":{"type":"record"}}`, `resource.id is required`},
		{"resource search: the subject needs an id", "/access/v1/search/resource", `{"subject":{"type":"user"},"action":` + read + `,"resource":{"type":"record"}}`, `subject.id is required`},
		{"action search: the subject needs an id", "/access/v1/search/action", `{"subject":{"type":"user"},"resource":` + record1 + `}`, `subject.id is required`},
	} {
		if w := az(s, tt.path, tt.body); w.Code != 400 || !strings.Contains(errorMessage(w), tt.msg) {
			t.Errorf("%s: got %d %s, want 400 with %q", tt.name, w.Code, w.Body, tt.msg)
		}
	}
}

// errorMessage returns the message of an error answer.
func errorMessage(w *httptest.ResponseRecorder) string {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &e)
	return e.Error.Message
}

// TestAuthZENSearchPages pages through a search one result at a time: the
// first page gives the limit; a token alone continues it (as the
// certification harness sends it); a changed request or limit is refused;
// the last page's token is empty. The candidate decided only to know there
// is more is not logged.
func TestAuthZENSearchPages(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, todoPackage)
	const path = "/access/v1/search/subject"
	query := `"subject":{"type":"user"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"todo-1"}`
	w := az(s, path, `{`+query+`}`)
	all := decodeJSON[searchAnswer](t, w).ids()
	if len(all) != 5 {
		t.Fatalf("all users may read todos: got %v", all)
	}
	before := len(log.lines(t))
	var got []string
	body := `{` + query + `,"page":{"limit":2}}`
	for page := 0; ; page++ {
		a := decodeJSON[searchAnswer](t, az(s, path, body))
		if a.Page == nil || a.Page.NextToken == nil || a.Page.Count == nil || *a.Page.Count != len(a.Results) {
			t.Fatalf("page %d: no page object, or a wrong count: %+v", page, a.Page)
		}
		got = append(got, a.ids()...)
		if *a.Page.NextToken == "" {
			break
		}
		if page > 5 {
			t.Fatal("more pages than results")
		}
		body = `{` + query + `,"page":{"token":"` + *a.Page.NextToken + `"}}`
	}
	if !slices.Equal(got, all) {
		t.Errorf("pages gave %v, want %v", got, all)
	}
	if n := len(log.lines(t)) - before; n != len(all) {
		t.Errorf("decision log: %d lines for %d results", n, len(all))
	}
	first := decodeJSON[searchAnswer](t, az(s, path, `{`+query+`,"page":{"limit":2}}`))
	token := *first.Page.NextToken
	for _, tt := range []struct{ name, body, msg string }{
		{"another action", `{"subject":{"type":"user"},"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"todo-1"},"page":{"token":"` + token + `"}}`, "given for another search"},
		{"another context", `{` + query + `,"context":{"a":1},"page":{"token":"` + token + `"}}`, "given for another search"},
		{"another endpoint", `{"subject":{"type":"user","id":"` + morty + `"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"todo-1"},"page":{"token":"` + token + `"}}`, "given for another search"},
		{"another limit", `{` + query + `,"page":{"token":"` + token + `","limit":3}}`, "not the limit of the search"},
	} {
		p := path
		if tt.name == "another endpoint" {
			p = "/access/v1/search/resource"
		}
		if w := az(s, p, tt.body); w.Code != 400 || !strings.Contains(w.Body.String(), tt.msg) {
			t.Errorf("%s: got %d %s, want 400 with %q", tt.name, w.Code, w.Body, tt.msg)
		}
	}
	// The same search, its JSON written otherwise, continues.
	if w := az(s, path, `{"resource":{"id":"todo-1","type":"todo"},"subject":{"type":"user","id":"ignored"},"action":{"name":"can_read_todos"},"page":{"token":"`+token+`","limit":2}}`); w.Code != 200 {
		t.Errorf("the same search reordered: got %d %s", w.Code, w.Body)
	}
	// A page of 0 says whether there is more, and answers nothing.
	a := decodeJSON[searchAnswer](t, az(s, path, `{`+query+`,"page":{"limit":0}}`))
	if len(a.Results) != 0 || a.Page == nil || *a.Page.NextToken == "" {
		t.Errorf("limit 0: got %+v", a)
	}
}

// TestAuthZENOpsWarden checks that an AuthZEN request to the ops-warden
// package gets the decision, reason and grant of the same request on
// /v1/check, and a decision log line with the same content but for the
// authzen member.
func TestAuthZENOpsWarden(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, opsPackage)
	type req struct{ subject, action, resource, context string }
	reqs := []req{
		{"iam:agt-state-hub-bridge", "ssh.sign", bridge, `{"principal":"agt-task-bridge","ttl_hours":24}`},
		{"agt-state-hub-bridge", "ssh.sign", bridge, `{"ttl_hours":3}`},
		{"adm-example", "ssh.sign", bridge, `{"ttl_hours":1}`},
		{"iam:agt-state-hub-bridge", "ssh.sign", bridge, `{"principal":"root","ttl_hours":1}`},
		{"iam:agt-state-hub-bridge", "ssh.sign", bridge, `{"ttl_hours":25}`},
		{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ``},
		{"iam:agt-state-hub-bridge", "ssh.exec", bridge, `{"ttl_hours":1}`},
		{"agt-nobody", "ssh.sign", "agt-nobody", `{"ttl_hours":1}`},
		{"iam:atm-backup-daily", "ssh.sign", "atm-backup-daily", "{\n \"ttl_hours\" : 8 ,\"note\":\"\u2028 1e2\"}"},
	}
	for _, rq := range reqs {
		check := `{"subject":"` + rq.subject + `","action":"` + rq.action + `","resource":"` + rq.resource + `"`
		azBody := `{"subject":{"type":"iam","id":"` + rq.subject + `","properties":{"x":1}},"action":{"name":"` + rq.action + `"},"resource":{"type":"actor","id":"` + rq.resource + `"}`
		if rq.context != "" {
			check += `,"context":` + rq.context
			azBody += `,"context":` + rq.context
		}
		c := decodeCheck(t, post(s, check+"}"))
		a := decodeJSON[decision](t, az(s, evalPath, azBody+"}"))
		lines := log.lines(t)
		checkLine, azLine := lines[len(lines)-2], lines[len(lines)-1]
		if *a.Decision != (c.Effect == "allow") || a.Context.Reason != c.Reason || (a.Context.Grant == nil) != (c.Grant == nil) ||
			c.Grant != nil && *a.Context.Grant != *c.Grant {
			t.Errorf("%+v: AuthZEN %+v, /v1/check %+v", rq, a, c)
		}
		if azLine["decision_id"] != a.Context.DecisionID {
			t.Errorf("%+v: the line is not the decision's", rq)
		}
		entities := azLine["authzen"].(map[string]any)
		for _, l := range []map[string]any{checkLine, azLine} {
			for _, m := range []string{"time", "decision_id", "seq", "prev"} {
				delete(l, m) // the line's own
			}
		}
		delete(azLine, "authzen")
		if diff := cmp.Diff(checkLine, azLine); diff != "" {
			t.Errorf("%+v: the lines differ (-check +authzen):\n%s", rq, diff)
		}
		want := map[string]any{"endpoint": "evaluation", "subject": map[string]any{"type": "iam", "id": rq.subject, "properties": map[string]any{"x": float64(1)}},
			"action": map[string]any{"name": rq.action}, "resource": map[string]any{"type": "actor", "id": rq.resource}}
		if diff := cmp.Diff(want, entities); diff != "" {
			t.Errorf("%+v: authzen member (-want +got):\n%s", rq, diff)
		}
	}
	// The raw log line keeps a line break character escaped.
	if strings.Contains(log.String(), "\u2028") {
		t.Error("the decision log holds an unescaped U+2028")
	}
	// Searches: which actors may this subject sign for; which subjects may
	// sign for this actor; what may it do.
	got := func(path, body string) []string { return decodeJSON[searchAnswer](t, az(s, path, body)).ids() }
	if g := got("/access/v1/search/resource", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},"resource":{"type":"actor"},"context":{"ttl_hours":1}}`); !slices.Equal(g, []string{"actor:agt-state-hub-bridge"}) {
		t.Errorf("resource search: got %v", g)
	}
	if g := got("/access/v1/search/subject", `{"subject":{"type":"iam"},"action":{"name":"ssh.sign"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":1}}`); !slices.Equal(g, []string{"iam:agt-state-hub-bridge", "iam:iam:agt-state-hub-bridge"}) {
		t.Errorf("subject search: got %v", g)
	}
	if g := got("/access/v1/search/action", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":1}}`); !slices.Equal(g, []string{":ssh.sign"}) {
		t.Errorf("action search: got %v", g)
	}
	// Without a TTL nothing is allowed, so nothing is found.
	if g := got("/access/v1/search/resource", `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},"resource":{"type":"actor"}}`); len(g) != 0 {
		t.Errorf("resource search without a ttl: got %v", g)
	}
}

// TestAuthZENRouting: a request finds its package by its path, else by its
// resource type, else it goes to the default package; /v1/check goes to a
// package with a registry.
func TestAuthZENRouting(t *testing.T) {
	s := newPackagesServer(t, &syncBuffer{}, Options{DefaultPackage: "authzen/todo"}, certPackage, todoPackage, opsPackage)
	reason := func(path, body string) string {
		return decodeJSON[decision](t, az(s, path, body)).Context.Reason
	}
	tests := []struct{ name, path, body, want string }{
		{"by resource type: record", evalPath, evalBody(alice, read, record1), "record_read"},
		{"by resource type: todo", evalPath, evalBody(`{"type":"user","id":"`+morty+`"}`, `{"name":"can_read_todos"}`, `{"type":"todo","id":"t"}`), "todos_readable"},
		{"by resource type: actor", evalPath, `{"subject":{"type":"iam","id":"adm-example"},"action":{"name":"ssh.sign"},"resource":{"type":"actor","id":"adm-example"},"context":{"ttl_hours":1}}`, "signing_policy_matched"},
		{"another type: the default package", evalPath, evalBody(alice, read, `{"type":"spaceship","id":"x"}`), "unknown_user"},
		{"the path names the package", "/authzen/certification" + evalPath, evalBody(alice, read, `{"type":"todo","id":"t"}`), "unknown_record"},
	}
	for _, tt := range tests {
		if got := reason(tt.path, tt.body); got != tt.want {
			t.Errorf("%s: got reason %s, want %s", tt.name, got, tt.want)
		}
	}
	// A batch routes each item.
	a := decodeJSON[batchAnswer](t, az(s, "/access/v1/evaluations", `{"subject":`+alice+`,"action":`+read+`,"evaluations":[{"resource":`+record1+`},{"resource":{"type":"todo","id":"t"}}]}`))
	var reasons []string
	for _, raw := range a.Context.Decisions {
		var c struct{ Reason string }
		json.Unmarshal(raw, &c)
		reasons = append(reasons, c.Reason)
	}
	if !slices.Equal(reasons, []string{"record_read", "unknown_user"}) {
		t.Errorf("batch: got %v", reasons)
	}
	if c := decodeCheck(t, post(s, allowBody)); c.Policy != "ops-warden/ssh-signing" {
		t.Errorf("/v1/check went to %s", c.Policy)
	}
	if c := decodeCheck(t, do(s, http.MethodPost, "/ops-warden/ssh-signing/v1/check", allowBody, "application/json", nil)); c.Effect != "allow" {
		t.Errorf("/PACKAGE/v1/check: got %+v", c)
	}
	if w := do(s, http.MethodPost, "/authzen/todo/v1/check", allowBody, "application/json", nil); w.Code != 404 || !strings.Contains(w.Body.String(), "need a package whose data is a registry") {
		t.Errorf("/v1/check to an entities package: got %d %s", w.Code, w.Body)
	}
	w := do(s, http.MethodGet, "/ops-warden/ssh-signing/v1/registry", "", "", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"policy_package": "ops-warden/ssh-signing"`) ||
		w.Header().Get("X-Flex-Auth-Package") != "ops-warden/ssh-signing" || !strings.HasPrefix(w.Header().Get("X-Flex-Auth-Policy-Digest"), "sha256:") {
		t.Errorf("/PACKAGE/v1/registry: got %d %v", w.Code, w.Header())
	}
	// Without a registry package, /v1/check has nowhere to go.
	only := newPackagesServer(t, &syncBuffer{}, Options{}, todoPackage)
	for _, w := range []*httptest.ResponseRecorder{post(only, allowBody), do(only, http.MethodGet, "/v1/registry", "", "", nil)} {
		if w.Code != 404 || !strings.Contains(w.Body.String(), "no package served here has a registry") {
			t.Errorf("no registry: got %d %s", w.Code, w.Body)
		}
	}
}

func TestAuthZENMetadata(t *testing.T) {
	s := newPackagesServer(t, &syncBuffer{}, Options{PublicURL: "https://pdp.example.com/"}, certPackage, todoPackage)
	type meta map[string]string
	want := func(base string) meta {
		return meta{"policy_decision_point": base,
			"access_evaluation_endpoint":  base + "/access/v1/evaluation",
			"access_evaluations_endpoint": base + "/access/v1/evaluations",
			"search_subject_endpoint":     base + "/access/v1/search/subject",
			"search_resource_endpoint":    base + "/access/v1/search/resource",
			"search_action_endpoint":      base + "/access/v1/search/action"}
	}
	for path, base := range map[string]string{
		metadataPath:                   "https://pdp.example.com",
		metadataPath + "/authzen/todo": "https://pdp.example.com/authzen/todo",
	} {
		w := do(s, http.MethodGet, path, "", "", http.Header{"X-Request-Id": {"m"}})
		got := decodeJSON[meta](t, w)
		if diff := cmp.Diff(want(base), got); diff != "" || w.Header().Get("X-Request-Id") != "m" {
			t.Errorf("%s (-want +got):\n%s", path, diff)
		}
	}
	if w := do(s, http.MethodGet, metadataPath+"/no/such", "", "", nil); w.Code != 404 {
		t.Errorf("an unknown package: got %d", w.Code)
	}
	if w := do(s, http.MethodPost, metadataPath, "", "", nil); w.Code != 405 {
		t.Errorf("POST: got %d", w.Code)
	}
	if w := do(s, http.MethodHead, metadataPath, "", "", nil); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: got %d with %d bytes", w.Code, w.Body.Len())
	}
	none := newPackagesServer(t, &syncBuffer{}, Options{}, certPackage)
	if w := do(none, http.MethodGet, metadataPath, "", "", nil); w.Code != 404 || !strings.Contains(w.Body.String(), "--public-url") {
		t.Errorf("no public URL: got %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{"pdp.example.com", "ftp://pdp", "https://pdp/?q=1", "https://pdp/#f", "https://u:p@pdp", "https://"} {
		if _, err := New(Options{PublicURL: bad, Packages: []Source{{Package: certPackage}}, DecisionLog: io.Discard}); err == nil {
			t.Errorf("--public-url %s: got no error", bad)
		}
	}
}

// failingWriter is a decision log that cannot be written.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestAuthZENLogUnavailable: a decision that cannot be logged is not
// given: 503, for one evaluation, a batch and a search alike.
func TestAuthZENLogUnavailable(t *testing.T) {
	s := newPackagesServer(t, failingWriter{}, Options{}, certPackage)
	for path, body := range map[string]string{
		evalPath:                     evalBody(alice, read, record1),
		"/access/v1/evaluations":     `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":` + record1 + `},{"resource":` + record2 + `}]}`,
		"/access/v1/search/resource": `{"subject":` + alice + `,"action":` + read + `,"resource":{"type":"record"}}`,
	} {
		w := az(s, path, body)
		if w.Code != 503 || strings.Contains(w.Body.String(), "decision\":true") || !strings.Contains(w.Body.String(), "decision_log_unavailable") {
			t.Errorf("%s: got %d %s, want 503", path, w.Code, w.Body)
		}
	}
	// A batch whose evaluations are all invalid makes no decision, and
	// needs no log.
	if w := az(s, "/access/v1/evaluations", `{"evaluations":[{}]}`); w.Code != 200 {
		t.Errorf("no decision: got %d %s", w.Code, w.Body)
	}
}

func TestNewPackagesRefused(t *testing.T) {
	dir := t.TempDir()
	other := copyPackage(t, certPackage, dir, "other")
	rewrite(t, other+"/policy_package.md", "resource_types: [record]", "resource_types: [record, todo]")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"the same package twice", Options{Packages: []Source{{Package: certPackage}, {Package: certPackage}}}, "two packages are named authzen/certification"},
		{"a resource type twice", Options{Packages: []Source{{Package: todoPackage}, {Package: other}}}, `packages authzen/todo and authzen/certification both decide resources of type "todo"`},
		{"an unknown default", Options{DefaultPackage: "a/b", Packages: []Source{{Package: todoPackage}}}, "the default package a/b is not served; the packages are authzen/todo"},
		{"no package", Options{}, "no package to serve"},
		{"a directory without a package", Options{Packages: []Source{{Package: dir}}}, "policy_package.md: no such file"},
	}
	for _, tt := range tests {
		tt.opts.DecisionLog = io.Discard
		if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func (b *syncBuffer) writesNow() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writes
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// copyPackage copies the package directory src to dir/name.
func copyPackage(t testing.TB, src, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewrite replaces old by new in file, which must hold old.
func rewrite(t testing.TB, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not hold %q", file, old)
	}
	writeFile(t, file, bytes.Replace(b, []byte(old), []byte(new), 1))
}

// TestAuthZENBatchCutShort: a batch whose write is cut short is answered
// 503, and none of its decisions is given; the lines that reached the file
// whole are named by a not_given record before the next decision, and the
// fragment after them parses as nothing.
func TestAuthZENBatchCutShort(t *testing.T) {
	f := &faultyWriter{short: true}
	s := newPackagesServer(t, f, Options{}, certPackage)
	f.failing.Store(true)
	item := `{"resource":` + record1 + `}`
	w := az(s, "/access/v1/evaluations", `{"subject":`+alice+`,"action":`+read+`,"evaluations":[`+strings.Repeat(item+",", 3)+item+`]}`)
	decodeError(t, w, 503, "decision_log_unavailable")
	f.failing.Store(false)
	d := decodeJSON[decision](t, az(s, evalPath, evalBody(alice, read, record1)))
	var decided, notGiven []string
	parsed := 0
	for _, line := range strings.Split(strings.TrimSuffix(f.String(), "\n"), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue // the fragment
		}
		parsed++
		if ids, ok := m["not_given"].([]any); ok {
			for _, id := range ids {
				notGiven = append(notGiven, id.(string))
			}
			continue
		}
		decided = append(decided, m["decision_id"].(string))
	}
	// Half of four lines reached the file: two whole decisions, not given.
	if len(decided) != 3 || decided[2] != d.Context.DecisionID || !slices.Equal(notGiven, decided[:2]) {
		t.Errorf("log: decisions %v, not given %v; want the batch's two whole lines not given, then %s\n%s", decided, notGiven, d.Context.DecisionID, f.String())
	}
	if metrics := do(s, http.MethodGet, "/metrics", "", "", nil).Body.String(); !strings.Contains(metrics, "flexauth_decision_log_errors_total 4") {
		t.Errorf("metrics: want the four refused decisions counted")
	}
}
