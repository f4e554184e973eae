package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testPolicyDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	testRegistryDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	allowBody          = `{"decision_id": "decision:873c6c682a52bebc", "effect": "allow", "reason": "signing_policy_matched", "policy": "ops-warden/ssh-signing", "policy_digest": "` + testPolicyDigest + `", "registry_digest": "` + testRegistryDigest + `", "grant": {"principal": "agt-task-bridge", "ttl_hours": 24}}`
	denyBody           = `{"decision_id": "decision:0123456789abcdef", "effect": "deny", "reason": "ttl_out_of_bounds", "policy": "ops-warden/ssh-signing", "policy_digest": "` + testPolicyDigest + `", "registry_digest": "` + testRegistryDigest + `"}`
)

// answer returns a handler that always answers status and body as JSON.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func newTestClient(t *testing.T, h http.Handler, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var bridgeRequest = Request{
	Subject:  "iam:agt-state-hub-bridge",
	Action:   "ssh.sign",
	Resource: "agt-state-hub-bridge",
	Context:  map[string]any{"principal": "agt-task-bridge", "ttl_hours": 24},
}

func TestCheckSendsTheContractRequest(t *testing.T) {
	var got map[string]any
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/prefix/v1/check" {
			t.Errorf("got %s %s, want POST /prefix/v1/check", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("got Content-Type %q, want application/json", ct)
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		answer(200, allowBody)(w, r)
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := New(srv.URL + "/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Check(context.Background(), bridgeRequest)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"subject": "iam:agt-state-hub-bridge", "action": "ssh.sign", "resource": "agt-state-hub-bridge",
		"context": map[string]any{"principal": "agt-task-bridge", "ttl_hours": float64(24)},
	}
	if gotJSON, wantJSON := mustJSON(t, got), mustJSON(t, want); gotJSON != wantJSON {
		t.Errorf("request body: got %s, want %s", gotJSON, wantJSON)
	}
	wantD := Decision{ID: "decision:873c6c682a52bebc", Effect: "allow", Reason: "signing_policy_matched",
		Policy: "ops-warden/ssh-signing", PolicyDigest: testPolicyDigest, RegistryDigest: testRegistryDigest,
		Grant: &Grant{Principal: "agt-task-bridge", TTLHours: 24}}
	if gotJSON, wantJSON := mustJSON(t, d), mustJSON(t, wantD); gotJSON != wantJSON {
		t.Errorf("decision: got %s, want %s", gotJSON, wantJSON)
	}
	if !d.Allowed() {
		t.Error("Allowed() = false for an allow")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckDeny(t *testing.T) {
	c := newTestClient(t, answer(200, denyBody))
	d, err := c.Check(context.Background(), bridgeRequest)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed() || d.Effect != "deny" || d.Reason != "ttl_out_of_bounds" || d.Grant != nil {
		t.Errorf("got %+v, want a deny for ttl_out_of_bounds without grant", d)
	}
}

// replace returns allowBody with old replaced by new, failing when old is
// not in it, so that a table row cannot silently test the valid body.
func replace(t *testing.T, body, old, new string) string {
	t.Helper()
	if !strings.Contains(body, old) {
		t.Fatalf("%q not in %s", old, body)
	}
	return strings.Replace(body, old, new, 1)
}

func TestCheckFailsClosedOnMalformedAnswers(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "not JSON"},
		{"garbage", `<html>hello</html>`, "not JSON"},
		{"array", `[]`, "want a JSON object"},
		{"truncated", allowBody[:len(allowBody)-10], "not JSON"},
		{"trailing data", allowBody + `{}`, "data after the JSON object"},
		{"only effect allow", `{"effect":"allow"}`, "decision_id: missing"},
		{"no decision id", replace(t, allowBody, `"decision_id": "decision:873c6c682a52bebc", `, ""), "decision_id: missing"},
		{"null decision id", replace(t, allowBody, `"decision:873c6c682a52bebc"`, "null"), "decision_id: missing"},
		{"bad decision id", replace(t, allowBody, `decision:873c6c682a52bebc`, "decision:873C6C682A52BEBC"), "decision_id: want"},
		{"short decision id", replace(t, allowBody, `decision:873c6c682a52bebc`, "decision:873c"), "decision_id: want"},
		{"no effect", replace(t, allowBody, `"effect": "allow", `, ""), "effect: missing"},
		{"effect Allow", replace(t, allowBody, `"allow"`, `"Allow"`), `effect: want "allow" or "deny", got "Allow"`},
		{"effect allowed", replace(t, allowBody, `"allow"`, `"allowed"`), `got "allowed"`},
		{"effect true", replace(t, allowBody, `"allow"`, `true`), "effect: want a string, got true"},
		{"effect padded", replace(t, allowBody, `"allow"`, `" allow"`), `got " allow"`},
		{"duplicate effect", replace(t, denyBody, `"effect": "deny",`, `"effect": "deny", "effect": "allow",`), "effect: appears twice"},
		{"no reason", replace(t, allowBody, `"reason": "signing_policy_matched", `, ""), "reason: missing"},
		{"bad reason", replace(t, allowBody, `signing_policy_matched`, "Signing Policy"), "reason: want"},
		{"no policy", replace(t, allowBody, `"policy": "ops-warden/ssh-signing", `, ""), "policy: missing"},
		{"no policy digest", replace(t, allowBody, `"policy_digest": "`+testPolicyDigest+`", `, ""), "policy_digest: missing"},
		{"bad registry digest", replace(t, allowBody, testRegistryDigest, "sha256:abc"), "registry_digest: want"},
		{"allow without grant", replace(t, allowBody, `, "grant": {"principal": "agt-task-bridge", "ttl_hours": 24}`, ""), "grant: missing on an allow"},
		{"allow with null grant", replace(t, allowBody, `{"principal": "agt-task-bridge", "ttl_hours": 24}`, "null"), "grant: missing on an allow"},
		{"grant not object", replace(t, allowBody, `{"principal": "agt-task-bridge", "ttl_hours": 24}`, `"yes"`), "grant: want a JSON object"},
		{"grant without principal", replace(t, allowBody, `"principal": "agt-task-bridge", `, ""), "grant.principal: missing"},
		{"grant bad principal", replace(t, allowBody, `"principal": "agt-task-bridge"`, `"principal": "Root User"`), "grant.principal: invalid"},
		{"grant ttl string", replace(t, allowBody, `"ttl_hours": 24`, `"ttl_hours": "24"`), `grant.ttl_hours: want an integer, got "24"`},
		{"grant ttl float", replace(t, allowBody, `"ttl_hours": 24`, `"ttl_hours": 24.5`), "grant.ttl_hours: want an integer, got 24.5"},
		{"grant ttl zero", replace(t, allowBody, `"ttl_hours": 24`, `"ttl_hours": 0`), "grant.ttl_hours: must be between 1 and 8760, got 0"},
		{"grant duplicate member", replace(t, allowBody, `"ttl_hours": 24`, `"ttl_hours": 24, "ttl_hours": 8760`), "grant.ttl_hours: appears twice"},
		{"deny with grant", replace(t, denyBody, `"registry_digest"`, `"grant": {"principal": "x", "ttl_hours": 1}, "registry_digest"`), "grant: present on a deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, answer(200, tt.body))
			d, err := c.Check(context.Background(), bridgeRequest)
			if err == nil {
				t.Fatalf("got decision %+v, want an error", d)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T %v, want a *ProtocolError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
			if d != nil {
				t.Errorf("got decision %+v with the error, want nil", d)
			}
		})
	}
}

// Member names are matched exactly, not case-insensitively as
// json.Unmarshal would: a stray "EFFECT" cannot turn a deny into an allow.
func TestCheckIgnoresCaseVariantMembers(t *testing.T) {
	body := replace(t, denyBody, `"effect": "deny",`, `"effect": "deny", "EFFECT": "allow", "Effect": "allow",`)
	c := newTestClient(t, answer(200, body))
	d, err := c.Check(context.Background(), bridgeRequest)
	if err != nil {
		t.Fatal(err)
	}
	if d.Effect != "deny" {
		t.Errorf("got effect %q, want deny", d.Effect)
	}
}

func TestCheckContentType(t *testing.T) {
	tests := []struct {
		ct      string
		wantErr bool
	}{
		{"application/json", false},
		{"application/json; charset=utf-8", false},
		{"text/plain", true},
		{"", true},
	}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = []string{tt.ct}
				io.WriteString(w, allowBody)
			}))
			_, err := c.Check(context.Background(), bridgeRequest)
			var pe *ProtocolError
			if got := errors.As(err, &pe); got != tt.wantErr {
				t.Errorf("got error %v, want a *ProtocolError: %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckStatusErrors(t *testing.T) {
	tests := []struct {
		name     string
		h        http.Handler
		wantCode int
		wantText string
	}{
		{"503 envelope", answer(503, `{"error": {"code": "decision_log_unavailable", "message": "the decision log cannot be written"}}`),
			503, "server answered 503 Service Unavailable: decision_log_unavailable: the decision log cannot be written"},
		{"500 garbage", answer(500, "boom\x1b[31m"), 500, `server answered 500 Internal Server Error: "boom\x1b[31m"`},
		{"502 html", answer(502, "<html>bad gateway</html>"), 502, "server answered 502 Bad Gateway"},
		{"400", answer(400, `{"error": {"code": "invalid_request", "message": "subject: required"}}`), 400, "invalid_request: subject: required"},
		// A 201 with a perfect envelope is still not the contract's 200.
		{"201 allow", answer(201, allowBody), 201, "server answered 201 Created"},
		{"redirect", http.RedirectHandler("http://elsewhere.example/v1/check", http.StatusTemporaryRedirect), 307,
			"to http://elsewhere.example/v1/check (redirects are not followed"},
		{"redirect with credentials", http.RedirectHandler("http://u:pw@elsewhere.example/v1/check?token=t", http.StatusFound), 302,
			"to http://xxxxx@elsewhere.example/v1/check?xxxxx (redirects are not followed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.h)
			d, err := c.Check(context.Background(), bridgeRequest)
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, %v, want a *StatusError", d, err)
			}
			if se.StatusCode != tt.wantCode {
				t.Errorf("got status %d, want %d", se.StatusCode, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

// countingTransport counts the requests it sends.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestWithTransportFollowsNoRedirect(t *testing.T) {
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		answer(200, allowBody).ServeHTTP(w, r)
	}))
	t.Cleanup(elsewhere.Close)
	rt := new(countingTransport)
	c := newTestClient(t, http.RedirectHandler(elsewhere.URL+"/v1/check", http.StatusTemporaryRedirect), WithTransport(rt))
	d, err := c.Check(context.Background(), bridgeRequest)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 307 {
		t.Fatalf("got %v, %v, want a *StatusError with status 307", d, err)
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
	if n := rt.n.Load(); n != 1 {
		t.Errorf("got %d requests through the transport, want 1", n)
	}
}

func TestCheckUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(context.Background(), bridgeRequest)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %T %v, want an *UnreachableError", err, err)
	}
	if ue.TimedOut() {
		t.Errorf("TimedOut() = true for a refused connection")
	}
	if want := "POST http://" + addr + "/v1/check: unreachable: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %q, want prefix %q", err, want)
	}
}

func TestCheckTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), WithTimeout(50*time.Millisecond))
	_, err := c.Check(context.Background(), bridgeRequest)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !ue.TimedOut() {
		t.Fatalf("got %v, want a timed-out *UnreachableError", err)
	}
	if want := "no answer within 50ms"; !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to contain %q", err, want)
	}
}

// A server that sends headers and then stalls mid-body is a timeout too.
func TestCheckTimeoutMidBody(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, allowBody[:20])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), WithTimeout(50*time.Millisecond))
	_, err := c.Check(context.Background(), bridgeRequest)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !ue.TimedOut() {
		t.Fatalf("got %v, want a timed-out *UnreachableError", err)
	}
}

func TestCheckRejectsIncompleteRequests(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("request sent")
	}))
	for _, req := range []Request{{Resource: "agt-x"}, {Subject: "agt-x"}} {
		if _, err := c.Check(context.Background(), req); err == nil {
			t.Errorf("Check(%+v): got no error, want one", req)
		}
	}
}

// TestNew: a base URL is an http or https URL without query or fragment;
// what the client shows of it, and its errors, carry no user information
// and no query.
func TestNew(t *testing.T) {
	tests := []struct {
		url, wantErr, wantURL string
	}{
		{"http://127.0.0.1:8080", "", "http://127.0.0.1:8080"},
		{"https://user:secret@flex-auth.example/base/", "", "https://xxxxx@flex-auth.example/base"},
		{"https://user:secret@flex-auth.example/?token=t", "without query", ""},
		{"https://user:secret@flex-auth.example/%zz", "invalid URL escape", ""},
		{"127.0.0.1:8080", "want an http:// or https:// url", ""},
		{"ftp://host", "want an http:// or https:// url", ""},
		{"http://", "no host", ""},
		{"http://host/?x=1", "without query", ""},
		{"http://host/%zz", "invalid URL escape", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := New(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if msg := err.Error(); strings.Contains(msg, "user") || strings.Contains(msg, "secret") || strings.Contains(msg, "token") {
					t.Errorf("the error shows a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.URL(); got != tt.wantURL {
				t.Errorf("got URL %q, want %q", got, tt.wantURL)
			}
		})
	}
}

const healthBody = `{"status": "ok", "registry": {"digest": "` + testRegistryDigest + `", "actors": 4, "loaded_at": "2026-06-24T10:00:00.123Z"}, "policy": {"package": "ops-warden/ssh-signing", "digest": "` + testPolicyDigest + `"}, "reload": {"last_error": null, "last_attempt_at": null}}`

func TestHealth(t *testing.T) {
	degraded := replace(t, replace(t, healthBody, `"ok"`, `"degraded"`),
		`{"last_error": null, "last_attempt_at": null}`, `{"last_error": "registry.json: digest mismatch", "last_attempt_at": "2026-06-24T11:00:00Z"}`)
	tests := []struct {
		name, body string
		wantOK     bool
		wantErr    string
	}{
		{"ok", healthBody, true, ""},
		{"degraded", degraded, false, ""},
		{"bad status", replace(t, healthBody, `"ok"`, `"fine"`), false, `status: want "ok" or "degraded", got "fine"`},
		{"no registry", replace(t, healthBody, `"registry"`, `"registries"`), false, "registry: missing"},
		{"bad digest", replace(t, healthBody, testRegistryDigest, "md5:0"), false, "registry.digest: want"},
		{"actors string", replace(t, healthBody, `"actors": 4`, `"actors": "4"`), false, "registry.actors: want an integer"},
		{"bad loaded_at", replace(t, healthBody, `2026-06-24T10:00:00.123Z`, "yesterday"), false, "registry.loaded_at: want an RFC 3339 time"},
		{"no policy package", replace(t, healthBody, `"package": "ops-warden/ssh-signing", `, ""), false, "policy.package: missing"},
		{"no reload", replace(t, healthBody, `, "reload": {"last_error": null, "last_attempt_at": null}`, ""), false, "reload: missing"},
		{"last_error number", replace(t, healthBody, `"last_error": null`, `"last_error": 1`), false, "reload.last_error: want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/healthz" {
					t.Errorf("got %s %s, want GET /healthz", r.Method, r.URL.Path)
				}
				answer(200, tt.body)(w, r)
			}))
			h, err := c.Health(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.OK() != tt.wantOK {
				t.Errorf("got OK() %v, want %v", h.OK(), tt.wantOK)
			}
			if h.Registry.Actors != 4 || h.Registry.Digest != testRegistryDigest || h.Policy.Package != "ops-warden/ssh-signing" {
				t.Errorf("got %+v, want the registry and policy of the body", h)
			}
		})
	}
}

// checkProtocolError checks that err is a *ProtocolError containing
// want, or nil when want is "", and reports whether there is an answer to
// check.
func checkProtocolError(t *testing.T, err error, want string) bool {
	t.Helper()
	var pe *ProtocolError
	switch {
	case want != "" && (!errors.As(err, &pe) || !strings.Contains(err.Error(), want)):
		t.Fatalf("got error %v, want a *ProtocolError containing %q", err, want)
	case want == "" && err != nil:
		t.Fatal(err)
	}
	return err == nil
}

func TestRegistry(t *testing.T) {
	fixture, err := os.ReadFile("../examples/ops-warden/production_registry_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, wantErr string
	}{
		{"fixture", string(fixture), ""},
		{"hand edited", strings.Replace(string(fixture), `"principal": "agt-task-bridge"`, `"principal": "agt-task-bridge2"`, 1), "digest does not match"},
		{"not a snapshot", `{"status":"ok"}`, "malformed answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, answer(200, tt.body))
			s, err := c.Registry(context.Background())
			if !checkProtocolError(t, err, tt.wantErr) {
				return
			}
			if a := s.Lookup("agt-state-hub-bridge"); a == nil || a.MaxTTLHours != 24 {
				t.Errorf("got actor %+v, want agt-state-hub-bridge with max_ttl_hours 24", a)
			}
		})
	}
}

func TestRegistryWithPolicy(t *testing.T) {
	fixture, err := os.ReadFile("../examples/ops-warden/production_registry_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	const pkg = "ops-warden/ssh-signing"
	tests := []struct {
		name    string
		headers map[string][]string
		want    *PolicyStatus
		wantErr string
	}{
		{name: "both headers", headers: map[string][]string{HeaderPackage: {pkg}, HeaderPolicyDigest: {testPolicyDigest}}, want: &PolicyStatus{Package: pkg, Digest: testPolicyDigest}},
		{name: "neither header", want: nil},
		{name: "package only", headers: map[string][]string{HeaderPackage: {pkg}}, wantErr: "header X-Flex-Auth-Policy-Digest is missing, though X-Flex-Auth-Package is sent"},
		{name: "digest only", headers: map[string][]string{HeaderPolicyDigest: {testPolicyDigest}}, wantErr: "header X-Flex-Auth-Package is missing"},
		{name: "digest twice", headers: map[string][]string{HeaderPackage: {pkg}, HeaderPolicyDigest: {testPolicyDigest, testRegistryDigest}}, wantErr: "header X-Flex-Auth-Policy-Digest is sent 2 times, want once"},
		{name: "digest not sha256", headers: map[string][]string{HeaderPackage: {pkg}, HeaderPolicyDigest: {"md5:abc"}}, wantErr: `header X-Flex-Auth-Policy-Digest: want "sha256:" and 64 lowercase hex digits, got "md5:abc"`},
		{name: "digest upper case", headers: map[string][]string{HeaderPackage: {pkg}, HeaderPolicyDigest: {strings.ToUpper(testPolicyDigest)}}, wantErr: "header X-Flex-Auth-Policy-Digest: want"},
		{name: "package invalid", headers: map[string][]string{HeaderPackage: {"Ops Warden"}, HeaderPolicyDigest: {testPolicyDigest}}, wantErr: "header X-Flex-Auth-Package: invalid name"},
		{name: "package too long", headers: map[string][]string{HeaderPackage: {strings.Repeat("a", 4096)}, HeaderPolicyDigest: {testPolicyDigest}}, wantErr: "header X-Flex-Auth-Package: 4096 bytes, too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/v1/registry" {
					t.Errorf("got %s %s, want GET /v1/registry", r.Method, r.URL.Path)
				}
				for k, vs := range tt.headers {
					w.Header()[k] = vs
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write(fixture)
			}))
			got, err := c.RegistryWithPolicy(context.Background())
			if !checkProtocolError(t, err, tt.wantErr) {
				return
			}
			if string(got.JSON) != string(fixture) {
				t.Errorf("got %d bytes of snapshot, want the %d bytes sent", len(got.JSON), len(fixture))
			}
			if (got.Policy == nil) != (tt.want == nil) || got.Policy != nil && *got.Policy != *tt.want {
				t.Errorf("got policy %+v, want %+v", got.Policy, tt.want)
			}
		})
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestRegistryWithPolicyKeepsTheLimits: the registry's size limit and the
// refusal of redirects hold for RegistryWithPolicy as for Registry.
func TestRegistryWithPolicyKeepsTheLimits(t *testing.T) {
	// One byte over the limit, streamed; a generous time limit, as the
	// answer is large and the machine may be busy.
	big := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.CopyN(w, zeros{}, maxRegistryBytes+1)
	}), WithTimeout(time.Minute))
	var pe *ProtocolError
	if _, err := big.RegistryWithPolicy(context.Background()); !errors.As(err, &pe) || !strings.Contains(err.Error(), "answer larger than") {
		t.Errorf("over the limit: got %v, want a *ProtocolError saying it is too large", err)
	}
	moved := newTestClient(t, http.RedirectHandler("http://elsewhere.example/v1/registry", http.StatusFound))
	var se *StatusError
	if _, err := moved.RegistryWithPolicy(context.Background()); !errors.As(err, &se) || se.StatusCode != http.StatusFound || se.Location == "" {
		t.Errorf("redirect: got %v, want a *StatusError 302 naming the location", err)
	}
}
