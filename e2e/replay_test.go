package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const decisionSample = "../examples/ops-warden/decision_sample.jsonl"

// changedPair writes, in dir, the example's registry generated from its
// inventory with the bridge's lifetime cut to 12 hours, and returns its
// path and the policy's.
func changedPair(t *testing.T, dir string) (reg, pol string) {
	t.Helper()
	inv := strings.Replace(string(readFile(t, "../examples/ops-warden/inventory.yaml")), "    ttl_hours: 24\n    max_ttl_hours: 24\n", "    ttl_hours: 12\n    max_ttl_hours: 12\n", 1)
	if !strings.Contains(inv, "max_ttl_hours: 12") {
		t.Fatal("the example inventory no longer has the bridge's lifetimes where this test changes them")
	}
	invFile := filepath.Join(dir, "inventory.yaml")
	writeFile(t, invFile, []byte(inv))
	reg = filepath.Join(dir, "registry.json")
	if code, _, errOut := runCLI(t, nil, "generate", invFile, "-o", reg); code != 0 {
		t.Fatalf("generate: %s", errOut)
	}
	return reg, fixturePolicy
}

// bridgeAllowsOver12 counts, in the decision sample, what changedPair
// must change, from the sample rather than by replay: the bridge's
// allows for more than 12 hours.
func bridgeAllowsOver12(t *testing.T) int {
	t.Helper()
	n := 0
	for line := range strings.Lines(string(readFile(t, decisionSample))) {
		var d struct {
			Resource, Effect string
			Context          struct {
				TTLHours any `json:"ttl_hours"`
			}
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		if ttl, _ := d.Context.TTLHours.(float64); d.Resource == bridge && d.Effect == "allow" && ttl > 12 {
			n++
		}
	}
	return n
}

// TestReplay replays the shipped decision sample: under the pair it was
// recorded with, nothing changes; under a registry that cuts the bridge's
// lifetime, the bridge's allows for more than 12 hours become denies,
// and every format says so.
func TestReplay(t *testing.T) {
	skipShort(t)
	t.Parallel()
	code, out, errOut := runCLI(t, nil, "replay", "--log", decisionSample, "--registry", fixtureRegistry, "--policy", fixturePolicy)
	if code != 0 || !strings.Contains(out, "none of 1000 recorded decisions would change") {
		t.Fatalf("replay of the sample under its own pair: exit %d, want 0:\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, nil, "log", "verify", decisionSample); code != 0 {
		t.Errorf("the sample does not verify: exit %d\n%s%s", code, out, errOut)
	}
	// The package directory decides the same; several packages may be
	// given, each deciding the decisions that name it.
	code, out, errOut = runCLI(t, nil, "replay", "--log", decisionSample, "--package", "../examples/ops-warden", "--package", "../examples/authzen-todo")
	if code != 0 || !strings.Contains(out, "none of 1000 recorded decisions would change") {
		t.Errorf("replay of the sample under its package directory: exit %d, want 0:\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"--log", decisionSample},
		{"--log", decisionSample, "--registry", fixtureRegistry},
		{"--registry", fixtureRegistry, "--policy", fixturePolicy},
	} {
		if code, _, errOut := runCLI(t, nil, append([]string{"replay"}, args...)...); code != 2 || !strings.Contains(errOut, "Run 'flex-auth replay --help' for usage.") {
			t.Errorf("replay %s: exit %d, want 2 with usage:\n%s", strings.Join(args, " "), code, errOut)
		}
	}

	reg, pol := changedPair(t, t.TempDir())
	code, out, errOut = runCLI(t, nil, "replay", "--log", decisionSample, "--registry", reg, "--policy", pol, "--format", "json")
	if code != 1 {
		t.Fatalf("replay under a changed registry: exit %d, want 1:\n%s%s", code, out, errOut)
	}
	var rep struct {
		FormatVersion int            `json:"format_version"`
		Decisions     int            `json:"decisions"`
		Changed       int            `json:"changed"`
		Transitions   map[string]int `json:"transitions"`
		Groups        []struct {
			Actor     string `json:"actor"`
			Recorded  struct{ Effect, Reason string }
			Replayed  struct{ Effect, Reason string }
			Count     int `json:"count"`
			Decisions []struct {
				ID      string `json:"decision_id"`
				Time    string `json:"time"`
				Subject string `json:"subject"`
			} `json:"decisions"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	wantChanged := bridgeAllowsOver12(t)
	if rep.FormatVersion != 1 || rep.Decisions != 1000 || rep.Changed != wantChanged || rep.Transitions["allow_to_deny"] != wantChanged || len(rep.Groups) != 1 {
		t.Fatalf("json: got %+v, want %d of the bridge's allows changed to denies", rep, wantChanged)
	}
	g := rep.Groups[0]
	if g.Actor != "agt-state-hub-bridge" || g.Recorded.Reason != "signing_policy_matched" || g.Replayed.Reason != "ttl_out_of_bounds" || g.Count != wantChanged ||
		len(g.Decisions) != 10 || !strings.HasPrefix(g.Decisions[0].ID, "decision:") || g.Decisions[0].Subject != "iam:agt-state-hub-bridge" {
		t.Errorf("group: got %+v", g)
	}

	for format, want := range map[string]string{
		"text":     "agt-state-hub-bridge: allow signing_policy_matched -> deny ttl_out_of_bounds:",
		"markdown": "### ⚠️ Impact on recorded decisions:",
		"github":   "::warning title=Recorded decisions would change%3A agt-state-hub-bridge::",
	} {
		summary := filepath.Join(t.TempDir(), "summary.md")
		code, out, _ := runCLI(t, []string{"GITHUB_STEP_SUMMARY=" + summary}, "replay", "--log", decisionSample, "--registry", reg, "--policy", pol, "--format", format)
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("--format %s: exit %d, want 1 and %q:\n%s", format, code, want, out)
		}
		if data, _ := os.ReadFile(summary); format == "github" && !strings.Contains(string(data), "Impact on recorded decisions") {
			t.Errorf("--format github: the step summary holds %q", data)
		}
	}

	t.Run("errors", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.jsonl")
		writeFile(t, other, []byte(strings.ReplaceAll(string(readFile(t, decisionSample)), `"policy":"ops-warden/ssh-signing"`, `"policy":"other/package"`)))
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--log", decisionSample, "--registry", fixtureRegistry}, "--registry and --policy go together"},
			{[]string{"--registry", fixtureRegistry, "--policy", fixturePolicy}, "--log is required"},
			{[]string{"--log", "nonexistent.jsonl", "--registry", fixtureRegistry, "--policy", fixturePolicy}, "nonexistent.jsonl"},
			{[]string{"--log", decisionSample, "--registry", fixturePolicy, "--policy", fixturePolicy}, "policy_package.md"},
			{[]string{"--log", decisionSample, "--registry", fixtureRegistry, "--policy", fixturePolicy, "--format", "yaml"}, "unknown format"},
			{[]string{"--log", other, "--registry", fixtureRegistry, "--policy", fixturePolicy}, "NOT DECIDED AGAIN: 1000 decisions of package other/package"},
		} {
			code, out, errOut := runCLI(t, nil, append([]string{"replay"}, tt.args...)...)
			if code != 2 || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("replay %v: exit %d, want 2 and %q:\n%s%s", tt.args, code, tt.want, out, errOut)
			}
		}
	})
}
