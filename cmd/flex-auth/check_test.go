package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

const (
	// testDigest is the digest of the registry fixture, which
	// checkServer serves.
	testDigest   = "sha256:57522a4d7480d7d72febe4e0fb97a792086beb7cdec90afa09f5fbe0905e4e13"
	policyDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	otherDigest  = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	testAllow    = `{"decision_id": "decision:873c6c682a52bebc", "effect": "allow", "reason": "signing_policy_matched", "policy": "ops-warden/ssh-signing", "policy_digest": "` + policyDigest + `", "registry_digest": "` + testDigest + `", "grant": {"principal": "agt-task-bridge", "ttl_hours": 24}}`
	testDeny     = `{"decision_id": "decision:0123456789abcdef", "effect": "deny", "reason": "ttl_out_of_bounds", "policy": "ops-warden/ssh-signing", "policy_digest": "` + policyDigest + `", "registry_digest": "` + testDigest + `"}`
)

// checkServer serves the registry fixture and answers every check with
// status and body, recording the last check request. GET /healthz
// reports the registry digests in healthz, one per request, the last
// again once they run out; none means testDigest.
func checkServer(t *testing.T, status int, body string, healthz ...string) (url string, last *map[string]any) {
	t.Helper()
	fixture, err := os.ReadFile("../../examples/ops-warden/production_registry_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(healthz) == 0 {
		healthz = []string{testDigest}
	}
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/healthz":
			fmt.Fprintf(w, `{"status": "ok", "registry": {"digest": %q, "actors": 3, "loaded_at": "2026-06-24T10:00:00Z"}, "policy": {"package": "ops-warden/ssh-signing", "digest": %q}, "reload": {"last_error": null, "last_attempt_at": null}}`,
				healthz[0], policyDigest)
			if len(healthz) > 1 {
				healthz = healthz[1:]
			}
		case "/v1/registry":
			w.Write(fixture)
		case "/v1/check":
			got = nil
			if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
				t.Errorf("check request: %v", err)
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &got
}

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		args        []string
		env         map[string]string
		healthz     []string // registry digests GET /healthz reports, in turn
		wantCode    int
		wantRequest string // the check request as JSON, "" for none
		wantOut     []string
		wantErr     string
	}{
		{
			name: "allow with flags", status: 200, body: testAllow,
			args:        []string{"--actor", "agt-state-hub-bridge", "--subject", "iam:agt-state-hub-bridge", "--principal", "agt-task-bridge", "--ttl", "24"},
			wantCode:    0,
			wantRequest: `{"action":"ssh.sign","context":{"principal":"agt-task-bridge","ttl_hours":24},"resource":"agt-state-hub-bridge","subject":"iam:agt-state-hub-bridge"}`,
			wantOut:     []string{"decision_id:     decision:873c6c682a52bebc\n", "effect:          allow\n", "grant:           principal agt-task-bridge, ttl 24h\n"},
		},
		{
			name: "subject from WARDEN_POLICY_SUBJECT, ttl from registry", status: 200, body: testAllow,
			args:        []string{"--actor", "agt-state-hub-bridge"},
			env:         map[string]string{"WARDEN_POLICY_SUBJECT": "iam:agt-state-hub-bridge"},
			wantRequest: `{"action":"ssh.sign","context":{"ttl_hours":24},"resource":"agt-state-hub-bridge","subject":"iam:agt-state-hub-bridge"}`,
			wantOut:     []string{"subject:         iam:agt-state-hub-bridge\n", "ttl_hours:       24 (the actor's default_ttl_hours)\n"},
		},
		{
			name: "--subject beats the environment", status: 200, body: testAllow,
			args:        []string{"--actor", "agt-state-hub-bridge", "--subject", "agt-state-hub-bridge", "--ttl", "24"},
			env:         map[string]string{"WARDEN_POLICY_SUBJECT": "iam:agt-state-hub-bridge"},
			wantRequest: `{"action":"ssh.sign","context":{"ttl_hours":24},"resource":"agt-state-hub-bridge","subject":"agt-state-hub-bridge"}`,
		},
		{
			name: "subject defaults to the actor", status: 200, body: testDeny,
			args:        []string{"--actor", "agt-state-hub-bridge", "--ttl", "999"},
			wantCode:    1,
			wantRequest: `{"action":"ssh.sign","context":{"ttl_hours":999},"resource":"agt-state-hub-bridge","subject":"agt-state-hub-bridge"}`,
			wantOut:     []string{"effect:          deny\n", "reason:          ttl_out_of_bounds\n"},
		},
		{
			name: "json allow", status: 200, body: testAllow,
			args:    []string{"--actor", "agt-state-hub-bridge", "--ttl", "24", "--json"},
			wantOut: []string{`"decision_id": "decision:873c6c682a52bebc"`, `"effect": "allow"`, `"ttl_source": "given"`},
		},
		{
			name: "json 500", status: 500, body: "oops",
			args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "24", "--json"}, wantCode: 2,
			wantOut: []string{`"kind": "server_error"`, `"actor": "agt-state-hub-bridge"`},
			wantErr: "server answered 500",
		},
		{
			name: "allow without decision id", status: 200, body: `{"effect":"allow"}`,
			args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "24"}, wantCode: 2,
			wantErr: "check: no decision, failing closed: POST ",
		},
		{
			name: "url from FLEX_AUTH_URL", status: 200, body: testAllow,
			args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "24"},
			env:  map[string]string{"FLEX_AUTH_URL": "{url}"},
		},
		{
			name: "grant for another TTL", status: 200, body: testAllow,
			args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "1"}, wantCode: 2,
			wantOut: []string{"effect:          allow\n"},
			wantErr: "check: decision refused, failing closed: the answer does not match the question: the grant is for 24 hours, the request asked for 1\n",
		},
		{
			name: "grant for another principal", status: 200, body: testAllow,
			args: []string{"--actor", "agt-state-hub-bridge", "--principal", "root", "--ttl", "24", "--json"}, wantCode: 2,
			wantOut: []string{`"kind": "mismatched_answer"`, `"effect": "allow"`},
			wantErr: "the grant is for principal agt-task-bridge, the request asked for root",
		},
		{
			name: "decision from another registry", status: 200, body: testAllow,
			healthz: []string{otherDigest}, args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "24"}, wantCode: 2,
			wantErr: "the decision was made with registry " + testDigest + ", but the service reports it serves " + otherDigest,
		},
		{
			name: "a deny from another registry", status: 200, body: testDeny,
			healthz: []string{otherDigest}, args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "999"}, wantCode: 2,
			wantErr: "the decision was made with registry " + testDigest,
		},
		{
			name: "a reload between the questions", status: 200, body: testAllow,
			healthz: []string{otherDigest, testDigest}, args: []string{"--actor", "agt-state-hub-bridge", "--ttl", "24"}, wantCode: 0,
		},
		{
			name: "registry default, decision from another registry", status: 200,
			body: strings.Replace(testAllow, `"registry_digest": "`+testDigest, `"registry_digest": "`+otherDigest, 1),
			args: []string{"--actor", "agt-state-hub-bridge"}, wantCode: 2,
			wantErr: "the decision was made with registry " + otherDigest + ", but the service reports it serves " + testDigest,
		},
		{name: "no url", args: []string{"--actor", "agt-x"}, env: map[string]string{"FLEX_AUTH_URL": "-"}, wantCode: 2, wantErr: "no service url"},
		{name: "no actor", args: []string{}, wantCode: 2, wantErr: "--actor is required"},
		{name: "unknown flag", args: []string{"--actor", "agt-x", "--bogus"}, wantCode: 2, wantErr: "unknown flag: --bogus"},
		{name: "positional argument", args: []string{"agt-x"}, wantCode: 2, wantErr: `unexpected argument "agt-x"`},
		{name: "bad ttl", args: []string{"--actor", "agt-x", "--ttl", "many"}, wantCode: 2, wantErr: "invalid argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, last := checkServer(t, tt.status, tt.body, tt.healthz...)
			t.Setenv("FLEX_AUTH_URL", "")
			t.Setenv("WARDEN_POLICY_SUBJECT", "")
			args := append([]string{"check"}, tt.args...)
			if _, ok := tt.env["FLEX_AUTH_URL"]; !ok {
				args = append(args, "--url", url)
			}
			for k, v := range tt.env {
				if v == "-" {
					v = ""
				}
				t.Setenv(k, strings.ReplaceAll(v, "{url}", url))
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if tt.wantRequest != "" {
				got, _ := json.Marshal(*last)
				if string(got) != tt.wantRequest {
					t.Errorf("got request %s, want %s", got, tt.wantRequest)
				}
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("got stdout\n%s\nwant it to contain %q", stdout.String(), w)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
			if tt.wantErr == "" && stderr.Len() > 0 {
				t.Errorf("got stderr %q, want none", stderr.String())
			}
		})
	}
}

func TestCheckCommandUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"check", "--url", "http://" + addr, "--actor", "agt-state-hub-bridge"}, nil, &stdout, &stderr)
	if code != 2 {
		t.Errorf("got exit %d, want 2", code)
	}
	if want := fmt.Sprintf("GET http://%s/v1/registry: unreachable", addr); !strings.Contains(stderr.String(), want) {
		t.Errorf("got stderr %q, want it to contain %q", stderr.String(), want)
	}
}

func TestSmokeCommandUsage(t *testing.T) {
	t.Setenv("FLEX_AUTH_URL", "")
	for _, args := range [][]string{{"smoke", "--actor", "agt-x"}, {"smoke", "--url", "http://127.0.0.1:1"}, {"smoke", "--bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != 1 || stderr.Len() == 0 {
			t.Errorf("%v: got exit %d stderr %q, want exit 1 with a message", args, code, stderr.String())
		}
	}
}
