package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runCLI runs the binary with args and env (added to the test's) and
// returns its exit code and output.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(flexAuth, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// cleanEnv keeps the caller's FLEX_AUTH_URL and WARDEN_POLICY_SUBJECT out
// of the commands under test.
var cleanEnv = []string{"FLEX_AUTH_URL=", "WARDEN_POLICY_SUBJECT="}

func TestCheckAndSmokeAgainstServer(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"check allow", nil, []string{"check", "--url", s.URL, "--actor", bridge, "--subject", "iam:agt-state-hub-bridge"}, 0,
			[]string{"effect:          allow\n", "reason:          signing_policy_matched\n", "grant:           principal agt-task-bridge, ttl 24h\n", "decision_id:     decision:"}},
		{"check allow from the environment", []string{"FLEX_AUTH_URL=" + s.URL, "WARDEN_POLICY_SUBJECT=iam:agt-state-hub-bridge"},
			[]string{"check", "--actor", bridge, "--principal", "agt-task-bridge", "--ttl", "24", "--json"}, 0,
			[]string{`"subject": "iam:agt-state-hub-bridge"`, `"effect": "allow"`, `"decision_id": "decision:`}},
		{"check deny ttl 999", nil, []string{"check", "--url", s.URL, "--actor", bridge, "--ttl", "999"}, 1,
			[]string{"effect:          deny\n", "reason:          ttl_out_of_bounds\n"}},
		{"check deny subject", nil, []string{"check", "--url", s.URL, "--actor", bridge, "--subject", "iam:adm-example"}, 1,
			[]string{"reason:          subject_not_bound\n"}},
		{"check deny unknown actor", nil, []string{"check", "--url", s.URL, "--actor", "agt-nobody"}, 1,
			[]string{"reason:          unknown_actor_resource\n"}},
		{"smoke", nil, []string{"smoke", "--url", s.URL, "--actor", bridge}, 0,
			[]string{"PASS healthz", "PASS allow         actor=agt-state-hub-bridge subject=agt-state-hub-bridge ttl_hours=24 decision=decision:",
				"PASS deny_ttl      actor=agt-state-hub-bridge subject=agt-state-hub-bridge ttl_hours=25 decision=decision:",
				"reason=ttl_out_of_bounds", "reason=unknown_actor_resource", "smoke: all 5 steps passed\n"}},
		{"smoke with the iam subject", []string{"FLEX_AUTH_URL=" + s.URL, "WARDEN_POLICY_SUBJECT=iam:agt-state-hub-bridge"},
			[]string{"smoke", "--actor", bridge}, 0, []string{"subject=iam:agt-state-hub-bridge", "smoke: all 5 steps passed\n"}},
		{"smoke for every fixture actor", nil, []string{"smoke", "--url", s.URL, "--actor", "agt-codex-interhub-bootstrap"}, 0,
			[]string{"ttl_hours=3 ", "smoke: all 5 steps passed\n"}},
		{"smoke for an unknown actor", nil, []string{"smoke", "--url", s.URL, "--actor", "agt-nobody"}, 1,
			[]string{"FAIL registry", "agt-nobody is not in the served registry", "smoke: FAILED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append(cleanEnv, tt.env...), tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout: got\n%s\nwant it to contain %q", out, w)
				}
			}
		})
	}
	// Every decision the commands were given is in the server's log.
	lines, _ := readLog(t, readFile(t, s.Log))
	if len(lines) != 5+3*3+1 { // 5 checks, 3 smokes of 3 decisions, 1 of 1
		t.Errorf("decision log: got %d lines, want 15: one per decision the commands asked for", len(lines))
	}
}

// closedURL returns the URL of a port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// check fails closed: exit 2 whenever no well-formed decision came back,
// whatever the service did instead.
func TestCheckFailsClosed(t *testing.T) {
	skipShort(t)
	t.Parallel()
	fixture := readFile(t, fixtureRegistry)
	fake := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == "/v1/registry" {
				w.Write(fixture)
				return
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices when the client hangs up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs before hang.Close
	tests := []struct {
		name, url string
		wantErr   string
	}{
		{"closed port", closedURL(t), "unreachable"},
		{"500", fake(500, `{"error": {"code": "internal", "message": "boom"}}`), "server answered 500"},
		{"503 decision log unavailable", fake(503, `{"error": {"code": "decision_log_unavailable", "message": "x"}}`), "decision_log_unavailable"},
		{"garbage", fake(200, `<html>allow</html>`), "malformed answer"},
		{"allow without decision id", fake(200, `{"effect":"allow"}`), "decision_id: missing"},
		{"timeout", hang.URL, "no answer within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, cleanEnv, "check", "--url", tt.url, "--actor", bridge, "--ttl", "24", "--timeout", "200ms")
			if code != 2 {
				t.Errorf("exit: got %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) || !strings.Contains(errOut, "failing closed") {
				t.Errorf("stderr: got %q, want it to say %q and failing closed", errOut, tt.wantErr)
			}
			if strings.Contains(out, "allow") {
				t.Errorf("stdout: got %q, want no allow", out)
			}
			// The smoke against the same service fails (exit 1) and says why.
			code, out, _ = runCLI(t, cleanEnv, "smoke", "--url", tt.url, "--actor", bridge, "--timeout", "200ms")
			if code != 1 || !strings.Contains(out, "FAIL healthz") {
				t.Errorf("smoke: got exit %d\n%s\nwant exit 1 with a failed healthz", code, out)
			}
		})
	}
}
