package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/coulomb/flex-auth/examples"
)

func TestCheckDecisions(t *testing.T) {
	polDigest, regDigest := builtinPair(t)
	s := newTestServer(t, Source{}, &syncBuffer{})
	tests := []struct {
		name      string
		body      string
		effect    string
		reason    string
		principal string
		ttl       int64
	}{
		{"allow with the IAM subject", allowBody, "allow", "signing_policy_matched", "agt-task-bridge", 24},
		{"allow with the actor name, default action", `{"subject":"atm-backup-daily","resource":"atm-backup-daily","context":{"ttl_hours":8}}`,
			"allow", "signing_policy_matched", "atm-backup-daily", 8},
		{"grant takes the TTL asked for", `{"subject":"adm-example","resource":"adm-example","context":{"ttl_hours":3}}`,
			"allow", "signing_policy_matched", "adm-full", 3},
		{"action null is the default", `{"subject":"adm-example","action":null,"resource":"adm-example","context":{"ttl_hours":1}}`,
			"allow", "signing_policy_matched", "adm-full", 1},
		{"nested context members are fine", `{"subject":"adm-example","resource":"adm-example","context":{"ttl_hours":4,"tags":["a",{"b":[1,2.5,true,null]}],"ticket":{"id":"OPS-1"}}}`,
			"allow", "signing_policy_matched", "adm-full", 4},
		{"escaped strings decode", `{"subject":"iam:agt-state-hub-bridge","resource":"agt-state-hub-\u0062ridge","context":{"ttl_hours":2}}`,
			"allow", "signing_policy_matched", "agt-task-bridge", 2},
		{"ttl above max", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":999}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"ttl 24.0 is a float, not an integer", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":24.0}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"ttl 2.4e1 is a float", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":2.4e1}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"ttl 1.5", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":1.5}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"ttl as a string", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":"24"}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"ttl beyond int64", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":99999999999999999999}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"ttl -0 is zero", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":-0}}`, "deny", "ttl_out_of_bounds", "", 0},
		{"no context", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge"}`, "deny", "ttl_out_of_bounds", "", 0},
		{"context null", `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":null}`, "deny", "ttl_out_of_bounds", "", 0},
		{"unknown actor", `{"subject":"agt-nobody","resource":"agt-nobody","context":{"ttl_hours":1}}`, "deny", "unknown_actor_resource", "", 0},
		{"other action", `{"subject":"adm-example","action":"ssh.exec","resource":"adm-example","context":{"ttl_hours":1}}`, "deny", "action_not_supported", "", 0},
		{"subject of another actor", `{"subject":"adm-example","resource":"agt-state-hub-bridge","context":{"ttl_hours":1}}`, "deny", "subject_not_bound", "", 0},
		{"wrong principal", `{"subject":"adm-example","resource":"adm-example","context":{"principal":"root","ttl_hours":1}}`, "deny", "principal_not_allowed", "", 0},
		{"whitespace everywhere", " \n{ \"subject\" :\t\"adm-example\" ,\r\n \"resource\":\"adm-example\", \"context\" : { \"ttl_hours\" : 48 } } \n",
			"allow", "signing_policy_matched", "adm-full", 48},
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := decodeCheck(t, post(s, tt.body))
			if resp.Effect != tt.effect || resp.Reason != tt.reason {
				t.Errorf("decision: got %s %s, want %s %s", resp.Effect, resp.Reason, tt.effect, tt.reason)
			}
			if resp.Policy != "ops-warden/ssh-signing" || resp.PolicyDigest != polDigest || resp.RegistryDigest != regDigest {
				t.Errorf("pair: got %s %s %s, want ops-warden/ssh-signing %s %s", resp.Policy, resp.PolicyDigest, resp.RegistryDigest, polDigest, regDigest)
			}
			switch {
			case tt.effect == "allow" && resp.Grant == nil:
				t.Errorf("grant: got none, want %s for %dh", tt.principal, tt.ttl)
			case tt.effect == "allow" && (resp.Grant.Principal != tt.principal || resp.Grant.TTLHours != tt.ttl):
				t.Errorf("grant: got %s for %dh, want %s for %dh", resp.Grant.Principal, resp.Grant.TTLHours, tt.principal, tt.ttl)
			case tt.effect == "deny" && resp.Grant != nil:
				t.Errorf("grant: got %+v on a deny, want none", *resp.Grant)
			}
			if ids[resp.DecisionID] {
				t.Errorf("decision_id %s repeated", resp.DecisionID)
			}
			ids[resp.DecisionID] = true
		})
	}
}

// TestGrantGuard checks that an allow the registry cannot back (a package
// that allows everything) never leaves the server as a grant.
func TestGrantGuard(t *testing.T) {
	src, _ := fileSource(t)
	pol := strings.Replace(string(fixture(t, examples.OpsWardenPolicy)), "when: actor == null", "when: \"false\"", 1)
	pol = strings.Replace(pol, "|| context.ttl_hours > actor.max_ttl_hours", "", 1)
	writeFile(t, src.Policy, []byte(pol))
	s := newTestServer(t, src, &syncBuffer{})
	tests := []struct{ name, body string }{
		{"resource not in the registry", `{"subject":"x","action":"ssh.sign","resource":"agt-nobody","context":{"ttl_hours":1}}`},
		{"ttl above the actor's max", `{"subject":"adm-example","resource":"adm-example","context":{"ttl_hours":49}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := decodeCheck(t, post(s, tt.body))
			if resp.Effect != "deny" || resp.Reason != "policy_error" || resp.Grant != nil {
				t.Errorf("got %s %s grant %v, want deny policy_error and no grant", resp.Effect, resp.Reason, resp.Grant)
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	deep := `{"subject":"a","resource":"b","context":{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`
	tests := []struct {
		name, body, contentType string
		status                  int
		code                    string
		msgContains             string
	}{
		{"empty body", "", "application/json", 400, "invalid_request", "empty"},
		{"only whitespace", " \n ", "application/json", 400, "invalid_request", "empty"},
		{"malformed JSON", `{"subject":`, "application/json", 400, "invalid_request", "invalid JSON"},
		{"missing colon", `{"subject" "a"}`, "application/json", 400, "invalid_request", "':'"},
		{"trailing comma", `{"subject":"a","resource":"b",}`, "application/json", 400, "invalid_request", "invalid character ','"},
		{"trailing data", allowBody + `x`, "application/json", 400, "invalid_request", "trailing data"},
		{"two objects", allowBody + allowBody, "application/json", 400, "invalid_request", "trailing data"},
		{"not an object", `["subject"]`, "application/json", 400, "invalid_request", "JSON object"},
		{"a string", `"hello"`, "application/json", 400, "invalid_request", "JSON object"},
		{"missing subject", `{"resource":"adm-example"}`, "application/json", 400, "invalid_request", `"subject" is required`},
		{"missing resource", `{"subject":"adm-example"}`, "application/json", 400, "invalid_request", `"resource" is required`},
		{"empty subject", `{"subject":"","resource":"adm-example"}`, "application/json", 400, "invalid_request", `"subject" must be a non-empty string`},
		{"null resource", `{"subject":"a","resource":null}`, "application/json", 400, "invalid_request", `"resource" must be a non-empty string`},
		{"empty action", `{"subject":"a","action":"","resource":"b"}`, "application/json", 400, "invalid_request", `"action"`},
		{"subject a number", `{"subject":7,"resource":"adm-example"}`, "application/json", 400, "invalid_request", "got a number"},
		{"resource an object", `{"subject":"a","resource":{}}`, "application/json", 400, "invalid_request", "got an object"},
		{"action an array", `{"subject":"a","resource":"b","action":["ssh.sign"]}`, "application/json", 400, "invalid_request", "got an array"},
		{"context an array", `{"subject":"a","resource":"b","context":[1]}`, "application/json", 400, "invalid_request", `"context" must be an object, got an array`},
		{"context a string", `{"subject":"a","resource":"b","context":"ttl=24"}`, "application/json", 400, "invalid_request", "got a string"},
		{"unknown member", `{"subject":"a","resource":"b","contxt":{}}`, "application/json", 400, "invalid_request", `unknown member "contxt"`},
		{"duplicate member", `{"subject":"a","resource":"b","resource":"c"}`, "application/json", 400, "invalid_request", `duplicate member "resource"`},
		{"duplicate member spelled with an escape", `{"subject":"a","resource":"b","resourc\u0065":"c"}`, "application/json", 400, "invalid_request", `duplicate member "resource"`},
		{"duplicate context key", `{"subject":"a","resource":"b","context":{"ttl_hours":1,"ttl_hours":999}}`, "application/json", 400, "invalid_request", `duplicate key "ttl_hours"`},
		{"invalid UTF-8", "{\"subject\":\"a\xff\",\"resource\":\"b\"}", "application/json", 400, "invalid_request", "UTF-8"},
		{"lone surrogate", `{"subject":"\ud800","resource":"b"}`, "application/json", 400, "invalid_request", "surrogate"},
		{"raw control character", "{\"subject\":\"a\nb\",\"resource\":\"b\"}", "application/json", 400, "invalid_request", "control character"},
		{"bad escape", `{"subject":"a\x","resource":"b"}`, "application/json", 400, "invalid_request", "escape"},
		{"deep nesting", deep, "application/json", 400, "invalid_request", "deeper"},
		{"number out of range", `{"subject":"a","resource":"b","context":{"n":1e999}}`, "application/json", 400, "invalid_request", "out of range"},
		{"bad number", `{"subject":"a","resource":"b","context":{"n":01}}`, "application/json", 400, "invalid_request", "invalid JSON"},
		{"leading plus", `{"subject":"a","resource":"b","context":{"n":+1}}`, "application/json", 400, "invalid_request", "invalid JSON"},
		{"NaN", `{"subject":"a","resource":"b","context":{"n":NaN}}`, "application/json", 400, "invalid_request", "invalid JSON"},
		{"bad literal", `{"subject":"a","resource":"b","context":{"n":tru}}`, "application/json", 400, "invalid_request", "invalid JSON"},
		{"no content type", allowBody, "", 415, "unsupported_media_type", "application/json"},
		{"text/plain", allowBody, "text/plain", 415, "unsupported_media_type", "application/json"},
		{"form", allowBody, "application/x-www-form-urlencoded", 415, "unsupported_media_type", "application/json"},
		{"latin1 charset", allowBody, "application/json; charset=latin1", 415, "unsupported_media_type", "application/json"},
		{"malformed content type", allowBody, "application/json; charset", 415, "unsupported_media_type", "application/json"},
		{"json suffix type", allowBody, "application/problem+json", 415, "unsupported_media_type", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, http.MethodPost, "/v1/check", tt.body, tt.contentType, nil)
			e := decodeError(t, w, tt.status, tt.code)
			if !strings.Contains(e.Error.Message, tt.msgContains) {
				t.Errorf("message: got %q, want it to contain %q", e.Error.Message, tt.msgContains)
			}
		})
	}
}

func TestContentTypeParameters(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON", "application/json; foo=bar"} {
		t.Run(ct, func(t *testing.T) {
			resp := decodeCheck(t, do(s, http.MethodPost, "/v1/check", allowBody, ct, nil))
			if resp.Effect != "allow" {
				t.Errorf("effect: got %s, want allow", resp.Effect)
			}
		})
	}
}

// padded returns allowBody padded with trailing spaces to n bytes.
func padded(n int) string {
	return allowBody + strings.Repeat(" ", n-len(allowBody))
}

func TestBodyLimit(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	t.Run("exactly 64 KiB is accepted", func(t *testing.T) {
		resp := decodeCheck(t, post(s, padded(MaxRequestBytes)))
		if resp.Effect != "allow" {
			t.Errorf("effect: got %s, want allow", resp.Effect)
		}
	})
	t.Run("one byte over is refused", func(t *testing.T) {
		decodeError(t, post(s, padded(MaxRequestBytes+1)), 413, "request_too_large")
	})
	t.Run("over the limit without a Content-Length", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/v1/check", io.MultiReader(strings.NewReader(padded(MaxRequestBytes)), strings.NewReader(" ")))
		r.ContentLength = -1
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		decodeError(t, w, 413, "request_too_large")
	})
	t.Run("a declared length over the limit is refused unread", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(allowBody))
		r.ContentLength = 1 << 30
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		decodeError(t, w, 413, "request_too_large")
	})
}

func TestMethodsAndPaths(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/v1/check", 405, "POST"},
		{http.MethodPut, "/v1/check", 405, "POST"},
		{http.MethodHead, "/v1/check", 405, "POST"},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
		{http.MethodDelete, "/readyz", 405, "GET, HEAD"},
		{http.MethodPost, "/v1/registry", 405, "GET, HEAD"},
		{http.MethodPost, "/metrics", 405, "GET, HEAD"},
		{http.MethodGet, "/", 404, ""},
		{http.MethodGet, "/v1/checks", 404, ""},
		{http.MethodPost, "/v1/check/", 404, ""},
		{http.MethodGet, "/healthz/", 404, ""},
		{http.MethodGet, "/v2/check", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := do(s, tt.method, tt.path, "", "application/json", nil)
			code := "not_found"
			if tt.status == 405 {
				code = "method_not_allowed"
			}
			if tt.method == http.MethodHead {
				// A HEAD answer has no body to decode.
				if w.Code != tt.status {
					t.Fatalf("status: got %d, want %d", w.Code, tt.status)
				}
			} else {
				decodeError(t, w, tt.status, code)
			}
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow: got %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestHealthzReadyz(t *testing.T) {
	polDigest, regDigest := builtinPair(t)
	s := newTestServer(t, Source{}, &syncBuffer{})
	w := do(s, http.MethodGet, "/healthz", "", "", nil)
	if w.Code != 200 {
		t.Fatalf("healthz status: got %d, want 200", w.Code)
	}
	var h struct {
		Status   string `json:"status"`
		Registry struct {
			Digest   string `json:"digest"`
			Actors   int    `json:"actors"`
			LoadedAt string `json:"loaded_at"`
		} `json:"registry"`
		Policy struct {
			Package string `json:"package"`
			Digest  string `json:"digest"`
		} `json:"policy"`
		Reload struct {
			LastError     *string `json:"last_error"`
			LastAttemptAt string  `json:"last_attempt_at"`
		} `json:"reload"`
		DecisionLog struct {
			LastError *string `json:"last_error"`
			Seq       uint64  `json:"seq"`
			Head      string  `json:"head"`
		} `json:"decision_log"`
		Source struct {
			Kind     string `json:"kind"`
			Location string `json:"location"`
		} `json:"source"`
		Packages []PackageHealth `json:"packages"`
	}
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatal(err)
	}
	want := fixtureTime
	if h.Status != "ok" || h.Registry.Digest != regDigest || h.Registry.Actors != 4 || h.Registry.LoadedAt != want ||
		h.Policy.Package != "ops-warden/ssh-signing" || h.Policy.Digest != polDigest ||
		h.Reload.LastError != nil || h.Reload.LastAttemptAt != want || h.DecisionLog.LastError != nil ||
		h.Source.Kind != "builtin" || h.Source.Location != "built-in example ops-warden" {
		t.Errorf("healthz: got %+v", h)
	}
	actors := 4
	wantPkg := []PackageHealth{{Package: "ops-warden/ssh-signing", Status: "ok", PolicyDigest: polDigest,
		Data: DataHealth{Kind: "registry", Digest: regDigest, Actors: &actors}, LoadedAt: h.Packages[0].LoadedAt,
		Default: true, Check: true, ResourceTypes: []string{"actor"}, Source: SourceHealth{Kind: "builtin", Location: "built-in example ops-warden"},
		Reload: ReloadHealth{LastAttemptAt: h.Packages[0].Reload.LastAttemptAt}}}
	if diff := cmp.Diff(wantPkg, h.Packages); diff != "" || h.Packages[0].LoadedAt.Format(time.RFC3339Nano) != want {
		t.Errorf("healthz packages (-want +got):\n%s", diff)
	}
	if !strings.Contains(do(s, http.MethodGet, "/healthz", "", "", nil).Body.String(), `"last_error":null`) {
		t.Errorf("healthz: last_error must be null, not absent")
	}

	w = do(s, http.MethodGet, "/readyz", "", "", nil)
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ready"}` {
		t.Errorf("readyz: got %d %s, want 200 {\"status\":\"ready\"}", w.Code, w.Body)
	}
	s.BeginShutdown()
	w = do(s, http.MethodGet, "/readyz", "", "", nil)
	if w.Code != 503 {
		t.Errorf("readyz after BeginShutdown: got %d, want 503", w.Code)
	}
	// Requests in flight and on open connections are still answered.
	if resp := decodeCheck(t, post(s, allowBody)); resp.Effect != "allow" {
		t.Errorf("check after BeginShutdown: got %s, want allow", resp.Effect)
	}
}

func TestRegistryETag(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	_, digest := builtinPair(t)
	etag := `"` + digest + `"`
	t.Run("body is the canonical snapshot", func(t *testing.T) {
		w := do(s, http.MethodGet, "/v1/registry", "", "", nil)
		if w.Code != 200 {
			t.Fatalf("status: got %d, want 200", w.Code)
		}
		if !bytes.Equal(w.Body.Bytes(), fixture(t, examples.OpsWardenRegistry)) {
			t.Errorf("body: got %q, want the canonical fixture", w.Body)
		}
		if got := w.Header().Get("ETag"); got != etag {
			t.Errorf("ETag: got %s, want %s", got, etag)
		}
	})
	tests := []struct {
		name, inm string
		status    int
	}{
		{"quoted", etag, 304},
		{"unquoted", digest, 304},
		{"weak", "W/" + etag, 304},
		{"star", "*", 304},
		{"in a list", `"sha256:00", ` + etag, 304},
		{"list without spaces", `"x",W/` + etag + `,"y"`, 304},
		{"another digest", `"sha256:0000000000000000000000000000000000000000000000000000000000000000"`, 200},
		{"empty", "", 200},
		{"prefix of the digest", `"sha256:5752"`, 200},
	}
	for _, tt := range tests {
		t.Run("If-None-Match "+tt.name, func(t *testing.T) {
			var h http.Header
			if tt.inm != "" {
				h = http.Header{"If-None-Match": {tt.inm}}
			}
			w := do(s, http.MethodGet, "/v1/registry", "", "", h)
			if w.Code != tt.status {
				t.Errorf("status: got %d, want %d", w.Code, tt.status)
			}
			if got := w.Header().Get("ETag"); got != etag {
				t.Errorf("ETag: got %s, want %s", got, etag)
			}
			if tt.status == 304 && w.Body.Len() != 0 {
				t.Errorf("304 body: got %q, want none", w.Body)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	polDigest, regDigest := builtinPair(t)
	s := newTestServer(t, Source{}, &syncBuffer{})
	post(s, allowBody)
	post(s, allowBody)
	post(s, `{"subject":"agt-nobody","resource":"agt-nobody"}`)
	post(s, `{`)
	w := do(s, http.MethodGet, "/metrics", "", "", nil)
	if w.Code != 200 {
		t.Fatalf("status: got %d, want 200", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`flexauth_decisions_total{effect="allow",package="ops-warden/ssh-signing",reason="signing_policy_matched"} 2`,
		`flexauth_decisions_total{effect="deny",package="ops-warden/ssh-signing",reason="unknown_actor_resource"} 1`,
		`flexauth_check_duration_seconds_count 4`,
		`flexauth_registry_actors 4`,
		`flexauth_reloads_total{package="ops-warden/ssh-signing",result="success"} 0`,
		`flexauth_reloads_total{package="ops-warden/ssh-signing",result="failure"} 0`,
		`flexauth_package_info{data="registry",data_digest="` + regDigest + `",package="ops-warden/ssh-signing",policy_digest="` + polDigest + `"} 1`,
		`flexauth_decision_log_errors_total 0`,
		`flexauth_http_errors_total{code="invalid_request"} 1`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics: missing %q", want)
		}
	}
}

func TestPanicAnswersJSON(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer s.recoverPanic(w, r)
		panic("boom")
	})
	e := decodeError(t, do(h, http.MethodGet, "/", "", "", nil), 500, "internal_error")
	if strings.Contains(e.Error.Message, "boom") {
		t.Errorf("message %q leaks the panic", e.Error.Message)
	}
}
