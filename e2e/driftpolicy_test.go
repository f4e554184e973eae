package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestDriftPolicy runs drift --policy against a running flex-auth: the
// policy it serves (GET /v1/registry's X-Flex-Auth-Policy-Digest) is
// compared with the checked-in package. The same package is in sync; a
// changed copy is drift, in every format, until the service serves it;
// without --policy the exit status is the contract's, whatever the
// policies.
func TestDriftPolicy(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const pkg = "ops-warden/ssh-signing"
	checkedIn := readFile(t, fixturePolicy)
	served := digestOf(checkedIn)

	t.Run("built-in example", func(t *testing.T) {
		s := newServer(t)
		s.start(t, "serve", "--addr", "127.0.0.1:0", "--log", s.Log)
		code, stdout, stderr := runCLI(t, cleanEnv, "drift", "../examples/ops-warden/inventory.yaml", s.URL, "--policy", fixturePolicy)
		if code != 0 || !strings.Contains(stdout, "in sync: ACTUAL "+s.URL+" matches EXPECTED") || !strings.Contains(stdout, ", policy "+pkg+" "+served+")") {
			t.Errorf("the built-in example against its checked-in files: exit %d, want 0 naming the policy compared\n%s%s", code, stdout, stderr)
		}
	})

	s := startServer(t)
	changed := filepath.Join(t.TempDir(), "policy_package.md")
	writeFile(t, changed, append(append([]byte(nil), checkedIn...), "\n<!-- a change under review -->\n"...))
	want := digestOf(readFile(t, changed))

	code, stdout, stderr := runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", fixturePolicy)
	if code != 0 || !strings.Contains(stdout, "policy "+pkg+" "+served) {
		t.Errorf("the served policy checked in: exit %d, want 0\n%s%s", code, stdout, stderr)
	}

	// The checked-in package changed, the service still serves the old one.
	finding := "! policy differs: ACTUAL " + s.URL + " serves policy " + pkg + " " + served + ", not the checked-in " + changed + " (" + pkg + " " + want + "); deploy"
	code, stdout, stderr = runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", changed)
	if code != 1 || !strings.Contains(stdout, "drift: ACTUAL "+s.URL+" does not match EXPECTED "+fixtureRegistry+": 1 finding\n") || !strings.Contains(stdout, finding) {
		t.Errorf("text: exit %d, want 1 and the finding %q\n%s%s", code, finding, stdout, stderr)
	}

	code, stdout, _ = runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", changed, "--format", "json")
	type policy struct{ Package, Digest, File string }
	var rep struct {
		InSync   bool `json:"in_sync"`
		Expected struct{ Policy *policy }
		Actual   struct{ Policy *policy }
		Changes  []any
		Findings []struct{ Kind, Side, Message string }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.InSync || len(rep.Changes) != 0 ||
		len(rep.Findings) != 1 || rep.Findings[0].Kind != "policy" || rep.Findings[0].Side != "actual" || !strings.Contains(rep.Findings[0].Message, want) ||
		rep.Expected.Policy == nil || *rep.Expected.Policy != (policy{pkg, want, changed}) ||
		rep.Actual.Policy == nil || *rep.Actual.Policy != (policy{pkg, served, ""}) {
		t.Errorf("json: exit %d, %v: %+v\n%s", code, err, rep, stdout)
	}

	code, stdout, _ = runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", changed, "--format", "markdown")
	row := "| policy digest | `" + want + "` (checked in: `" + changed + "`) | `" + served + "` |\n"
	if code != 1 || !strings.HasPrefix(stdout, "### ❌ Policy drift: `"+s.URL+"`") || !strings.Contains(stdout, row) || !strings.Contains(stdout, "- **policy differs**: ") {
		t.Errorf("markdown: exit %d, want 1, the heading, the row %q and the finding\n%s", code, row, stdout)
	}

	code, stdout, _ = runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", changed, "--format", "github")
	if code != 1 || !strings.HasPrefix(stdout, "::error title=Policy drift::ACTUAL "+s.URL+" serves policy") {
		t.Errorf("github: exit %d, want 1 and an annotation\n%s", code, stdout)
	}

	// Without --policy, drift compares registries, as the contract says.
	if code, stdout, stderr := runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL); code != 0 {
		t.Errorf("without --policy: exit %d, want 0\n%s%s", code, stdout, stderr)
	}

	// The fix the report gives: deploy the package and reload.
	copyFile(t, changed, s.Policy)
	s.signal(sighup)
	s.waitFor("the changed policy served", func() bool { return str(s.health(), "policy.digest") == want })
	if code, stdout, stderr := runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", changed); code != 0 || !strings.Contains(stdout, "policy "+pkg+" "+want) {
		t.Errorf("after the reload: exit %d, want 0\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCLI(t, cleanEnv, "drift", fixtureRegistry, s.URL, "--policy", fixturePolicy); code != 1 || !strings.Contains(stdout, "serves policy "+pkg+" "+want) {
		t.Errorf("the old package after the reload: exit %d, want 1\n%s", code, stdout)
	}
}
