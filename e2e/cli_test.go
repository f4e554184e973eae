package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// cliTimeout bounds a command's run: one blocked (on a FIFO, say) fails
// its test rather than hang the suite.
const cliTimeout = 2 * time.Minute

// runCLI runs the binary with args and env (added to the test's) and
// returns its exit code and output.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, flexAuth, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("flex-auth %s: still running after %s", strings.Join(args, " "), cliTimeout)
	}
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
	fake := func(status int, body string) string {
		return fakeService(t, func(w http.ResponseWriter) {
			w.WriteHeader(status)
			io.WriteString(w, body)
		}, loadFixture(t).Digest)
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
	// The services that answer are given 5s, the default --timeout: an
	// answer over loopback takes milliseconds, but can take more than the
	// hanging one's 200ms on a busy machine, which would fail them with
	// the timeout instead of what they answered.
	tests := []struct {
		name, url string
		timeout   string
		wantErr   string
	}{
		{"closed port", closedURL(t), "5s", "unreachable"},
		{"500", fake(500, `{"error": {"code": "internal", "message": "boom"}}`), "5s", "server answered 500"},
		{"503 decision log unavailable", fake(503, `{"error": {"code": "decision_log_unavailable", "message": "x"}}`), "5s", "decision_log_unavailable"},
		{"garbage", fake(200, `<html>allow</html>`), "5s", "malformed answer"},
		{"allow without decision id", fake(200, `{"effect":"allow"}`), "5s", "decision_id: missing"},
		{"timeout", hang.URL, "200ms", "no answer within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, cleanEnv, "check", "--url", tt.url, "--actor", bridge, "--ttl", "24", "--timeout", tt.timeout)
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
			code, out, _ = runCLI(t, cleanEnv, "smoke", "--url", tt.url, "--actor", bridge, "--timeout", tt.timeout)
			if code != 1 || !strings.Contains(out, "FAIL allow") {
				t.Errorf("smoke: got exit %d\n%s\nwant exit 1 with a failed allow", code, out)
			}
		})
	}
}

// fakeService serves the registry fixture on GET /v1/registry, a /healthz
// that reports the registry digests healthz in turn (the last one again
// once they run out), and answers POST /v1/check with answer. It is a
// service that answers what the real one cannot be made to.
func fakeService(t *testing.T, answer func(w http.ResponseWriter), healthz ...string) string {
	t.Helper()
	fixture := readFile(t, fixtureRegistry)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/registry":
			w.Write(fixture)
		case "/healthz":
			mu.Lock()
			digest := healthz[0]
			if len(healthz) > 1 {
				healthz = healthz[1:]
			}
			mu.Unlock()
			fmt.Fprintf(w, `{"status": "ok", "registry": {"digest": %q, "actors": 4, "loaded_at": "2026-06-24T10:00:00Z"}, "policy": {"package": "ops-warden/ssh-signing", "digest": %q}, "reload": {"last_error": null, "last_attempt_at": null}}`,
				digest, otherDigest)
		default:
			answer(w)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// otherDigest is a digest of nothing flex-auth serves.
const otherDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// TestCheckRefusesMismatchedAnswers runs check against a service whose
// well-formed answers do not match the question: an allow that grants
// another TTL or principal than asked, or an actor the served registry
// does not list, and a decision made with another registry than the one
// the service reports. check exits 2, never 0; a reload between its
// requests is no mismatch.
func TestCheckRefusesMismatchedAnswers(t *testing.T) {
	skipShort(t)
	t.Parallel()
	served := loadFixture(t).Digest
	decision := func(effect, registryDigest, grant string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			if grant != "" {
				grant = `, "grant": ` + grant
			}
			fmt.Fprintf(w, `{"decision_id": "decision:873c6c682a52bebc", "effect": %q, "reason": "signing_policy_matched", "policy": "ops-warden/ssh-signing", "policy_digest": %q, "registry_digest": %q%s}`,
				effect, otherDigest, registryDigest, grant)
		}
	}
	bridgeGrant := `{"principal": "agt-task-bridge", "ttl_hours": 24}`
	tests := []struct {
		name     string
		url      string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"a matching allow", fakeService(t, decision("allow", served, bridgeGrant), served),
			[]string{"--principal", "agt-task-bridge", "--ttl", "24"}, 0, ""},
		{"a grant for another TTL", fakeService(t, decision("allow", served, `{"principal": "agt-task-bridge", "ttl_hours": 8760}`), served),
			[]string{"--ttl", "24"}, 2, "the grant is for 8760 hours, the request asked for 24"},
		{"a grant for the default TTL when asked for less", fakeService(t, decision("allow", served, bridgeGrant), served),
			[]string{"--ttl", "1"}, 2, "the grant is for 24 hours, the request asked for 1"},
		{"a grant for another principal", fakeService(t, decision("allow", served, `{"principal": "root", "ttl_hours": 24}`), served),
			[]string{"--principal", "agt-task-bridge", "--ttl", "24"}, 2, "the grant is for principal root, the request asked for agt-task-bridge"},
		{"a grant of the registry's TTL for another", fakeService(t, decision("allow", served, `{"principal": "agt-task-bridge", "ttl_hours": 12}`), served),
			nil, 2, "the grant is for 12 hours, the request asked for 24"},
		{"an allow from another registry", fakeService(t, decision("allow", otherDigest, bridgeGrant), served),
			[]string{"--ttl", "24"}, 2, "the decision was made with registry " + otherDigest + ", but the service reports it serves " + served},
		{"an allow from another registry than the one served", fakeService(t, decision("allow", otherDigest, bridgeGrant), served),
			nil, 2, "the decision was made with registry " + otherDigest},
		{"a deny from another registry", fakeService(t, decision("deny", otherDigest, ""), served),
			[]string{"--ttl", "24"}, 2, "the decision was made with registry " + otherDigest},
		{"a reload between the questions", fakeService(t, decision("allow", served, bridgeGrant), otherDigest, served),
			[]string{"--ttl", "24"}, 0, ""},
		{"an allow for an actor the served registry lacks", fakeService(t, decision("allow", served, bridgeGrant), served),
			[]string{"--actor", "agt-nobody"}, 2, "an allow for agt-nobody, which the registry the service serves does not list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"check", "--url", tt.url, "--actor", bridge}, tt.args...)
			code, out, errOut := runCLI(t, cleanEnv, args...)
			if code != tt.wantCode {
				t.Errorf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			if tt.wantErr == "" {
				if errOut != "" {
					t.Errorf("stderr: got %q, want nothing", errOut)
				}
				return
			}
			if want := "flex-auth: check: decision refused, failing closed: the answer does not match the question: "; !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want %q and %q", errOut, want, tt.wantErr)
			}
			if strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr: got %q, want one line", errOut)
			}
		})
	}
}
