package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/prcomment"
	"github.com/coulomb/flex-auth/prcomment/prcommenttest"
)

const (
	driftInventory = "../../examples/ops-warden/inventory.yaml"
	driftFixture   = "../../examples/ops-warden/production_registry_snapshot.json"
	driftCases     = "../../drift/testdata/cases/"
)

// driftResult is what one run of the binary did.
type driftResult struct {
	code           int
	stdout, stderr string
}

// runDrift runs the binary with args and env (on top of an environment
// cleared of GitHub's variables, so that running these tests inside
// GitHub Actions changes nothing).
func runDrift(t *testing.T, bin string, env []string, args ...string) driftResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GITHUB_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return driftResult{code, out.String(), errb.String()}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDriftBinary runs the built flex-auth and checks drift's exit codes,
// drift against a live server, --write and --github-comment the way CI and
// operators run them.
func TestDriftBinary(t *testing.T) {
	bin := flexAuthBinary(t)
	dir := t.TempDir()
	t.Run("exit codes", func(t *testing.T) { testDriftExitCodes(t, bin, dir) })
	t.Run("live server", func(t *testing.T) { testDriftLive(t, bin) })
	t.Run("write", func(t *testing.T) { testDriftWrite(t, bin, dir) })
	t.Run("github format", func(t *testing.T) { testDriftGitHubFormat(t, bin, dir) })
	t.Run("github comment", func(t *testing.T) { testDriftGitHubComment(t, bin, dir) })
	t.Run("impact on recorded decisions", func(t *testing.T) { testDriftImpact(t, bin, t.TempDir()) })
	t.Run("runbook commands", func(t *testing.T) { testDriftDocCommands(t, bin) })
}

func testDriftExitCodes(t *testing.T, bin, dir string) {
	badInv := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badInv, []byte("version: 1\nactors:\n  agt-x:\n    ttl_hour: 3\n"), 0o644)
	badSnap := filepath.Join(dir, "bad.json")
	os.WriteFile(badSnap, []byte(`{"schema": "flex-auth.registry/v1", "actors": []}`), 0o644)
	dirJSON := filepath.Join(dir, "dir.json")
	os.Mkdir(dirJSON, 0o755)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	c := func(name string) string { return driftCases + name + "/" }
	tests := []struct {
		name     string
		args     []string
		want     int
		inStderr string
	}{
		{"in sync", []string{driftInventory, driftFixture}, 0, ""},
		{"in sync, json", []string{driftInventory, driftFixture, "--format", "json"}, 0, ""},
		{"reorder only", []string{c("reorder-only") + "expected.json", c("reorder-only") + "actual.json"}, 1, ""},
		{"formatting only", []string{c("formatting-only") + "expected.yaml", c("formatting-only") + "actual.json"}, 1, ""},
		{"hand edited", []string{c("hand-edited") + "expected.json", c("hand-edited") + "actual.json"}, 1, ""},
		{"actor added", []string{c("actor-added") + "expected.yaml", c("actor-added") + "actual.json"}, 1, ""},
		{"actor removed", []string{c("actor-removed") + "expected.yaml", c("actor-removed") + "actual.json"}, 1, ""},
		{"member changed", []string{c("member-changed") + "expected.yaml", c("member-changed") + "actual.json"}, 1, ""},
		{"policy package", []string{c("policy-package") + "expected.yaml", c("policy-package") + "actual.json"}, 1, ""},
		{"policy package flag", []string{c("policy-package") + "expected.yaml", c("policy-package") + "actual.json", "--policy-package", "ops-warden/legacy-signing"}, 0, ""},
		{"drift, markdown", []string{c("actor-added") + "expected.yaml", c("actor-added") + "actual.json", "--format", "markdown"}, 1, ""},
		{"missing file", []string{driftInventory, filepath.Join(dir, "missing.json")}, 2, "no such file"},
		{"missing inventory", []string{filepath.Join(dir, "missing.yaml"), driftFixture}, 2, "no such file"},
		{"unreadable file", []string{driftInventory, dirJSON}, 2, "a directory, not a regular file"},
		{"invalid inventory", []string{badInv, driftFixture}, 2, badInv + ":4:"},
		{"invalid snapshot", []string{driftInventory, badSnap}, 2, badSnap + ": "},
		{"unreachable URL", []string{driftFixture, closedURL}, 2, "is flex-auth running there?"},
		{"unknown kind", []string{driftInventory, "registry.txt"}, 2, "cannot tell what this is"},
		{"bad format", []string{driftInventory, driftFixture, "--format", "yaml"}, 2, `unknown format "yaml"`},
		{"empty policy package", []string{driftInventory, driftFixture, "--policy-package", ""}, 2, `policy package: invalid name ""`},
		{"unknown flag", []string{driftInventory, driftFixture, "--nope"}, 2, "unknown flag"},
		{"one argument", []string{driftInventory}, 2, "want EXPECTED and ACTUAL, got 1"},
		{"write to a URL", []string{driftFixture, "http://127.0.0.1:1", "--write"}, 2, "only a snapshot file can be rewritten"},
		{"write to an inventory", []string{driftFixture, driftInventory, "--write"}, 2, "only a snapshot file can be rewritten"},
		{"write and comment", []string{driftInventory, driftFixture, "--write", "--github-comment"}, 2, "do not go together"},
		{"comment outside Actions", []string{driftInventory, driftFixture, "--github-comment"}, 2, "GITHUB_TOKEN is not set"},
		{"policy without decisions", []string{driftInventory, driftFixture, "--policy", examplePolicyFile}, 0, ""},
		{"policy missing", []string{driftInventory, driftFixture, "--policy", filepath.Join(dir, "missing.md")}, 2, "--policy: load policy package: "},
		{"policy invalid", []string{driftInventory, driftFixture, "--policy", badInv}, 2, "--policy: "},
		{"policy of another package", []string{driftInventory, driftFixture, "--policy", examplePolicyFile, "--policy-package", "ops-warden/other"}, 2,
			"policy " + examplePolicyFile + " is package ops-warden/ssh-signing, but EXPECTED " + driftInventory + " is a registry for ops-warden/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runDrift(t, bin, nil, append([]string{"drift"}, tt.args...)...)
			if r.code != tt.want {
				t.Errorf("exit code: got %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.want, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("stderr: got %q, want it to contain %q", r.stderr, tt.inStderr)
			}
			if tt.want == 2 && r.stdout != "" && !strings.Contains(tt.name, "flag") {
				t.Errorf("an error printed a report on stdout: %q", r.stdout)
			}
		})
	}
}

func testDriftLive(t *testing.T, bin string) {
	fixture, err := os.ReadFile(driftFixture)
	if err != nil {
		t.Fatal(err)
	}
	drifted, err := os.ReadFile(driftCases + "actor-removed/actual.json")
	if err != nil {
		t.Fatal(err)
	}
	serve := func(status int, body []byte) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/registry" || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name     string
		url      string
		want     int
		inStdout string
	}{
		{"in sync", serve(200, fixture), 0, "in sync"},
		{"drifted", serve(200, drifted), 1, "+ atm-old-sync"},
		{"server error", serve(503, []byte(`{"error": {"code": "unavailable", "message": "shutting down"}}`)), 2, ""},
		{"not a snapshot", serve(200, []byte(`<html>`)), 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The service is EXPECTED here: the fixture in the repository
			// should match what is deployed; and the other way round.
			r := runDrift(t, bin, nil, "drift", tt.url, driftFixture)
			if r.code != tt.want {
				t.Fatalf("exit code: got %d, want %d\n%s%s", r.code, tt.want, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.inStdout) {
				t.Errorf("stdout: got %q, want it to contain %q", r.stdout, tt.inStdout)
			}
			r = runDrift(t, bin, nil, "drift", driftFixture, tt.url)
			if r.code != tt.want {
				t.Errorf("fixture against the service: got exit %d, want %d\n%s%s", r.code, tt.want, r.stdout, r.stderr)
			}
		})
	}
}

func testDriftWrite(t *testing.T, bin, dir string) {
	path := filepath.Join(dir, "write.json")
	copyFile(t, driftCases+"member-changed/actual.json", path)
	r := runDrift(t, bin, nil, "drift", driftCases+"member-changed/expected.yaml", path, "--write")
	if r.code != 0 || !strings.Contains(r.stderr, "wrote "+path) {
		t.Fatalf("--write: got exit %d, stderr %q; want 0 and a note", r.code, r.stderr)
	}
	if r := runDrift(t, bin, nil, "drift", driftCases+"member-changed/expected.yaml", path); r.code != 0 {
		t.Errorf("after --write: got exit %d, want 0\n%s", r.code, r.stdout)
	}
	r = runDrift(t, bin, nil, "drift", driftCases+"member-changed/expected.yaml", path, "--write")
	if r.code != 0 || strings.Contains(r.stderr, "wrote") {
		t.Errorf("--write in sync: got exit %d, stderr %q; want 0 and nothing written", r.code, r.stderr)
	}
}

func testDriftGitHubFormat(t *testing.T, bin, dir string) {
	summary := filepath.Join(dir, "step_summary.md")
	os.WriteFile(summary, []byte("earlier step\n"), 0o644)
	r := runDrift(t, bin, []string{"GITHUB_STEP_SUMMARY=" + summary}, "drift",
		driftCases+"actor-added/expected.yaml", driftCases+"actor-added/actual.json", "--format", "github")
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "::error file="+driftCases+"actor-added/actual.json,line=") {
		t.Errorf("stdout does not start with an annotation:\n%s", r.stdout)
	}
	data, _ := os.ReadFile(summary)
	if !strings.HasPrefix(string(data), "earlier step\n### ❌ Registry drift") || !strings.Contains(string(data), "```diff\n") {
		t.Errorf("step summary: got\n%s\nwant the earlier content, then the Markdown report", data)
	}
}

func testDriftGitHubComment(t *testing.T, bin, dir string) {
	gh := prcommenttest.NewServer("coulomb", "flex-auth", 42, "ghs_test")
	defer gh.Close()
	event := filepath.Join(dir, "event.json")
	os.WriteFile(event, []byte(`{"action": "synchronize", "number": 42, "pull_request": {"number": 42}}`), 0o644)
	env := []string{
		"GITHUB_TOKEN=ghs_test",
		"GITHUB_REPOSITORY=coulomb/flex-auth",
		"GITHUB_EVENT_PATH=" + event,
		"GITHUB_API_URL=" + gh.URL,
	}
	actual := filepath.Join(dir, "pr.json")
	expected := driftCases + "member-changed/expected.yaml"
	copyFile(t, driftCases+"member-changed/actual.json", actual)
	marker := prcomment.Marker(filepath.ToSlash(actual))

	r := runDrift(t, bin, env, "drift", expected, actual, "--format", "github", "--github-comment")
	if r.code != 1 || !strings.Contains(r.stderr, "pull request comment created") {
		t.Fatalf("first run: got exit %d, stderr %q; want 1 and a created comment", r.code, r.stderr)
	}
	cs := gh.Comments()
	if len(cs) != 1 || !strings.HasPrefix(cs[0].Body, marker+"\n### ❌ Registry drift") {
		t.Fatalf("after the first run: got comments %+v", cs)
	}
	id := cs[0].ID

	r = runDrift(t, bin, env, "drift", expected, actual, "--github-comment")
	if r.code != 1 || !strings.Contains(r.stderr, "pull request comment unchanged") {
		t.Errorf("second run: got exit %d, stderr %q; want 1 and the comment unchanged", r.code, r.stderr)
	}
	// ACTUAL spelt another way: the same comment, edited.
	r = runDrift(t, bin, env, "drift", expected, dir+"/./pr.json", "--github-comment")
	if r.code != 1 || !strings.Contains(r.stderr, "pull request comment updated") {
		t.Errorf("third run: got exit %d, stderr %q; want 1 and the comment updated", r.code, r.stderr)
	}

	copyFile(t, driftFixture, actual)
	r = runDrift(t, bin, env, "drift", driftInventory, actual, "--github-comment")
	if r.code != 0 || !strings.Contains(r.stderr, "pull request comment updated") {
		t.Errorf("in-sync run: got exit %d, stderr %q; want 0 and the comment updated", r.code, r.stderr)
	}
	cs = gh.Comments()
	if len(cs) != 1 || cs[0].ID != id || !strings.HasPrefix(cs[0].Body, marker+"\n### ✅ Registry in sync") {
		t.Fatalf("after the in-sync run: got comments %+v, want comment %d saying in sync", cs, id)
	}
	if n := gh.Count(http.MethodPost); n != 1 {
		t.Errorf("got %d comments created, want 1", n)
	}

	gh.Fail(http.MethodPatch, http.StatusForbidden, "Resource not accessible by integration")
	copyFile(t, driftCases+"member-changed/actual.json", actual)
	r = runDrift(t, bin, env, "drift", expected, actual, "--github-comment")
	if r.code != 2 || !strings.Contains(r.stderr, "403 Resource not accessible by integration") {
		t.Errorf("API error: got exit %d, stderr %q; want 2 and GitHub's message", r.code, r.stderr)
	}

	bad := append(append([]string{}, env[:2]...), "GITHUB_EVENT_PATH="+filepath.Join(dir, "no-event.json"), env[3])
	r = runDrift(t, bin, bad, "drift", expected, actual, "--github-comment")
	if r.code != 2 || !strings.Contains(r.stderr, "GITHUB_EVENT_PATH") {
		t.Errorf("missing event: got exit %d, stderr %q; want 2 naming GITHUB_EVENT_PATH", r.code, r.stderr)
	}
}

// testDriftDocCommands runs the drift command lines of the runbook's
// Drift section from the repository root, with the service URLs pointed
// at a server serving the fixture: each must find the registry in sync.
func testDriftDocCommands(t *testing.T, bin string) {
	doc, err := os.ReadFile("../../docs/ops-warden-registry-sync.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Drift\n")
	if !ok {
		t.Fatal("the runbook has no Drift section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	fixture, err := os.ReadFile(driftFixture)
	if err != nil {
		t.Fatal(err)
	}
	// The service serves the example's policy package, as flex-auth names
	// it: a command with --policy compares it.
	pkg, err := policy.Load(examplePolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Flex-Auth-Package", pkg.Name())
		w.Header().Set("X-Flex-Auth-Policy-Digest", pkg.Digest())
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixture)
	}))
	defer srv.Close()

	var commands []string
	lines := strings.Split(section, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "flex-auth drift ") {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		commands = append(commands, line)
	}
	if len(commands) < 5 {
		t.Fatalf("found %d drift commands in the Drift section, want at least 5", len(commands))
	}
	for _, command := range commands {
		t.Run(command, func(t *testing.T) {
			if strings.Contains(command, "--write") {
				t.Skip("would rewrite the repository's fixture; --write is tested on a copy")
			}
			command = strings.NewReplacer("http://127.0.0.1:8080", srv.URL, `"$FLEX_AUTH_URL"`, srv.URL).Replace(command)
			args := strings.Fields(command)[1:]
			if strings.Contains(command, "--github-comment") {
				args = slices.DeleteFunc(args, func(a string) bool { return a == "--github-comment" })
			}
			cmd := exec.Command(bin, args...)
			cmd.Dir = "../.."
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GITHUB_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s: %v\n%s", command, err, out)
			}
			if strings.Contains(command, "--policy") && !strings.Contains(string(out), ", policy "+pkg.Name()+" "+pkg.Digest()+")") {
				t.Errorf("%s: the policy was not compared:\n%s", command, out)
			}
		})
	}
}

// testDriftImpact gives drift the example's decision sample: a pull
// request that lowers the bridge's maximum lifetime shows, in every
// format and in the comment, which recorded decisions it would turn to
// denies; one that changes nothing is in sync, with nothing to comment.
func testDriftImpact(t *testing.T, bin, dir string) {
	const (
		sample = "../../examples/ops-warden/decision_sample.jsonl"
		pkg    = "../../examples/ops-warden/policy_package.md"
	)
	inv, err := os.ReadFile(driftInventory)
	if err != nil {
		t.Fatal(err)
	}
	lowered := strings.Replace(string(inv), "    ttl_hours: 24\n    max_ttl_hours: 24\n", "    ttl_hours: 12\n    max_ttl_hours: 12\n", 1)
	if lowered == string(inv) {
		t.Fatal("the example inventory no longer has the bridge's lifetimes where this test changes them")
	}
	expected := filepath.Join(dir, "inventory.yaml")
	os.WriteFile(expected, []byte(lowered), 0o644)
	impact := []string{"--policy", pkg, "--decisions", sample}

	r := runDrift(t, bin, nil, append([]string{"drift", expected, driftFixture}, impact...)...)
	if r.code != 1 || !strings.Contains(r.stdout, "\nImpact on recorded decisions\nreplay: 1000 decisions") ||
		!strings.Contains(r.stdout, "agt-state-hub-bridge: allow signing_policy_matched -> deny ttl_out_of_bounds:") {
		t.Errorf("text: exit %d, want 1 and the impact:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runDrift(t, bin, nil, append([]string{"drift", expected, driftFixture, "--format", "json"}, impact...)...)
	var js struct {
		InSync bool `json:"in_sync"`
		Impact struct {
			Decisions int `json:"decisions"`
			Changed   int `json:"changed"`
		} `json:"impact"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || js.InSync || js.Impact.Decisions != 1000 || js.Impact.Changed == 0 {
		t.Errorf("json: %v %+v\n%s", err, js, r.stdout)
	}

	gh := prcommenttest.NewServer("coulomb", "flex-auth", 7, "ghs_test")
	defer gh.Close()
	event := filepath.Join(dir, "event.json")
	os.WriteFile(event, []byte(`{"number": 7, "pull_request": {"number": 7}}`), 0o644)
	summary := filepath.Join(dir, "summary.md")
	env := []string{"GITHUB_TOKEN=ghs_test", "GITHUB_REPOSITORY=coulomb/flex-auth", "GITHUB_EVENT_PATH=" + event, "GITHUB_API_URL=" + gh.URL, "GITHUB_STEP_SUMMARY=" + summary}
	actual := filepath.Join(dir, "snapshot.json")
	copyFile(t, driftFixture, actual)

	// The policy package changes nothing, the registry is in sync: nothing
	// to say, no comment.
	r = runDrift(t, bin, env, append([]string{"drift", driftInventory, actual, "--format", "github", "--github-comment"}, impact...)...)
	if r.code != 0 || len(gh.Comments()) != 0 {
		t.Fatalf("in sync, nothing would change: exit %d, comments %+v\n%s%s", r.code, gh.Comments(), r.stdout, r.stderr)
	}
	// The snapshot regenerated with the pull request's inventory: in sync,
	// but recorded decisions would change: a comment says so.
	if r := runDrift(t, bin, nil, "generate", expected, "-o", actual); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r = runDrift(t, bin, env, append([]string{"drift", expected, actual, "--format", "github", "--github-comment"}, impact...)...)
	cs := gh.Comments()
	if r.code != 0 || len(cs) != 1 || !strings.Contains(cs[0].Body, "### ✅ Registry in sync") || !strings.Contains(cs[0].Body, "### ⚠️ Impact on recorded decisions:") ||
		!strings.Contains(r.stdout, "::warning title=Recorded decisions would change%3A agt-state-hub-bridge::") {
		t.Errorf("in sync, decisions would change: exit %d, comments %+v\n%s%s", r.code, cs, r.stdout, r.stderr)
	}
	if data, _ := os.ReadFile(summary); !strings.Contains(string(data), "Impact on recorded decisions") {
		t.Errorf("step summary: %s", data)
	}
	if r := runDrift(t, bin, nil, "drift", expected, actual, "--decisions", sample); r.code != 2 || !strings.Contains(r.stderr, "--decisions needs --policy") {
		t.Errorf("--decisions without --policy: exit %d, %s", r.code, r.stderr)
	}
}
