package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// actionStep returns the run script of the bash step whose id or name is
// id in action.yml, the repository's composite GitHub Action.
func actionStep(t *testing.T, id string) string {
	t.Helper()
	var action struct {
		Runs struct {
			Using string
			Steps []struct {
				ID    string
				Name  string
				Shell string
				Run   string
			}
		}
	}
	if err := yaml.Unmarshal(readFile(t, "../action.yml"), &action); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	for _, s := range action.Runs.Steps {
		if (s.ID == id || s.Name == id) && s.Shell == "bash" {
			return s.Run
		}
	}
	t.Fatalf("action.yml: no bash step with id or name %q", id)
	return ""
}

// TestAction runs the drift step of action.yml with bash, the way the
// runner does (its inputs in the environment, outputs to $GITHUB_OUTPUT),
// against the real binary: exit codes and outputs for a snapshot in sync,
// one that drifted, an error, and when it comments.
func TestAction(t *testing.T) {
	skipShort(t)
	t.Parallel()
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("the action reads the JSON report with jq, which GitHub's runners have; install jq")
	}
	script := actionStep(t, "drift")
	dir := t.TempDir()
	drifted := filepath.Join(dir, "drifted.json")
	writeFile(t, drifted, withBridgeTTL(t, loadFixture(t), 12).Canonical())
	inventory := "../examples/ops-warden/inventory.yaml"
	// The drifted snapshot is what this pull request's inventory makes.
	lowered := filepath.Join(dir, "lowered.json")
	writeFile(t, lowered, readFile(t, drifted))
	loweredImpact := func() string {
		code, out, errOut := runCLI(t, nil, "replay", "--log", decisionSample, "--registry", lowered, "--policy", fixturePolicy, "--format", "json")
		if code != 1 {
			t.Fatalf("replay under the lowered lifetime: exit %d\n%s", code, errOut)
		}
		var r struct{ Changed int }
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Changed != bridgeAllowsOver12(t) {
			t.Fatalf("replay: %v, want %d changed: %s", err, bridgeAllowsOver12(t), out)
		}
		return strconv.Itoa(r.Changed)
	}()

	tests := []struct {
		name          string
		env           map[string]string
		wantCode      int
		wantOutputs   string
		wantInStdout  string
		wantInStderr  string
		wantNoComment bool
	}{
		{"in sync", map[string]string{"ACTUAL": fixtureRegistry}, 0, "exit-code=0\nin-sync=true\nchanges=0\n", "", "", true},
		{"drift fails the step", map[string]string{"ACTUAL": drifted}, 1, "exit-code=1\nin-sync=false\nchanges=2\n",
			"::error file=" + drifted, "", true},
		{"drift without failing", map[string]string{"ACTUAL": drifted, "FAIL_ON_DRIFT": "false"}, 0, "exit-code=1\nin-sync=false\nchanges=2\n", "", "", true},
		{"error", map[string]string{"ACTUAL": filepath.Join(dir, "missing.json")}, 2, "exit-code=2\n", "", "missing.json", true},
		{"a fork's pull request gets no comment", map[string]string{"ACTUAL": drifted, "SAME_REPO_PR": "false"}, 1, "exit-code=1\nin-sync=false\nchanges=2\n", "", "", true},
		// Without a GitHub API to post to, a comment that is tried fails.
		{"this repository's pull request gets one", map[string]string{"ACTUAL": drifted, "SAME_REPO_PR": "true"}, 2, "exit-code=2\nin-sync=false\nchanges=2\n", "", "", false},
		{"comment forced", map[string]string{"ACTUAL": drifted, "COMMENT": "true"}, 2, "exit-code=2\nin-sync=false\nchanges=2\n", "", "", false},
		{"bad comment input", map[string]string{"ACTUAL": drifted, "COMMENT": "yes"}, 2, "", "::error::comment must be auto, true or false, not yes", "", true},
		// The decision sample replayed: under the pair it was recorded
		// with nothing changes; the drifted snapshot is ACTUAL, EXPECTED
		// the inventory, so the impact is the same.
		{"impact, nothing would change", map[string]string{"ACTUAL": drifted, "POLICY": fixturePolicy, "DECISIONS": decisionSample + "\n"}, 1,
			"exit-code=1\nin-sync=false\nchanges=2\nimpact-changed=0\n", "none of 1000 recorded decisions would change", "", true},
		{"impact, a lowered lifetime", map[string]string{"EXPECTED": lowered, "ACTUAL": drifted, "POLICY": fixturePolicy, "DECISIONS": decisionSample}, 0,
			"exit-code=0\nin-sync=true\nchanges=0\nimpact-changed=" + loweredImpact + "\n", "::warning title=Recorded decisions would change%3A agt-state-hub-bridge::", "", true},
		{"decisions without policy", map[string]string{"ACTUAL": drifted, "DECISIONS": decisionSample}, 2, "", "::error::decisions needs policy", "", true},
		// The policy alone: a snapshot file does not say which policy goes
		// with it, so it is not compared, and the report says so.
		{"policy without decisions", map[string]string{"ACTUAL": fixtureRegistry, "POLICY": fixturePolicy}, 0, "exit-code=0\nin-sync=true\nchanges=0\n",
			"::notice title=Not compared::policy not compared: ACTUAL " + fixtureRegistry + " is a snapshot file", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			output := filepath.Join(tmp, "output")
			env := map[string]string{
				"PATH": filepath.Dir(flexAuth) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME": tmp,
				"RUNNER_TEMP": tmp, "GITHUB_OUTPUT": output, "EXPECTED": inventory, "FORMAT": "github",
				"COMMENT": "auto", "FAIL_ON_DRIFT": "true", "SAME_REPO_PR": "false", "GITHUB_TOKEN": "", "POLICY": "", "DECISIONS": "",
			}
			for k, v := range tt.env {
				env[k] = v
			}
			cmd := exec.Command("bash", "-e", "-c", script)
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			outputs, _ := os.ReadFile(output)
			if code != tt.wantCode || string(outputs) != tt.wantOutputs {
				t.Errorf("got exit %d, outputs %q; want %d, %q\nstdout:\n%s\nstderr:\n%s", code, outputs, tt.wantCode, tt.wantOutputs, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.wantInStdout) || !strings.Contains(stderr.String(), tt.wantInStderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", &stdout, &stderr, tt.wantInStdout, tt.wantInStderr)
			}
			if commented := strings.Contains(stderr.String(), "comment"); commented == tt.wantNoComment {
				t.Errorf("stderr %q: a comment tried: %v, want %v", &stderr, commented, !tt.wantNoComment)
			}
		})
	}
}

// TestActionInstall runs the install step of action.yml the way the
// runner does when no version is given, as this repository's own drift
// workflow uses it (uses: ./): it builds flex-auth from the action's
// source, stamped with the action's commit, says its version, and puts
// it on the job's PATH. (A version installs with go install from the
// module proxy, which a test cannot reach.)
func TestActionInstall(t *testing.T) {
	skipShort(t)
	t.Parallel()
	script := actionStep(t, "Install flex-auth")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("the checkout is not a git repository (%v): the step's commit cannot be checked", err)
	}
	tmp := t.TempDir()
	githubPath := filepath.Join(tmp, "github_path")
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "VERSION=", "RUNNER_TEMP="+tmp, "GITHUB_ACTION_PATH="+root, "GITHUB_PATH="+githubPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the install step: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	bin := filepath.Join(tmp, "flex-auth-action")
	if got := string(readFile(t, githubPath)); got != bin+"\n" {
		t.Errorf("GITHUB_PATH holds %q, want %q", got, bin+"\n")
	}
	out, err := exec.Command(filepath.Join(bin, "flex-auth"), "version").Output()
	if err != nil {
		t.Fatalf("the installed flex-auth: %v", err)
	}
	want := "(commit " + strings.TrimSpace(string(head)) + ","
	if !strings.Contains(string(out), want) || stdout.String() != string(out) {
		t.Errorf("the installed flex-auth says %q and the step printed %q; want %q in both", out, &stdout, want)
	}
}
