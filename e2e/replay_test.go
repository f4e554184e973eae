package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const decisionSample = "../examples/ops-warden/decision_sample.jsonl"

// changedPair writes, in dir, the example's registry generated from its
// inventory with the bridge's lifetime cut to 12 hours, and returns its
// path and the policy's.
func changedPair(t *testing.T, dir string) (reg, pol string) {
	t.Helper()
	return editedPair(t, dir, "    ttl_hours: 24\n    max_ttl_hours: 24\n", "    ttl_hours: 12\n    max_ttl_hours: 12\n")
}

// editedPair writes, in dir, the example's registry generated from its
// inventory with old replaced by new, and returns its path and the
// policy's.
func editedPair(t *testing.T, dir, old, new string) (reg, pol string) {
	t.Helper()
	inv := strings.Replace(string(readFile(t, "../examples/ops-warden/inventory.yaml")), old, new, 1)
	if !strings.Contains(inv, new) {
		t.Fatalf("the example inventory no longer has %q where this test changes it", old)
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

// TestReplayTransitions: replay counts every kind of transition the
// contract names, each checked against a count taken from the sample by
// the policy's rule order (CONTRACT section 3), not by replay; and it
// reads lines written before the chain (no seq, no prev) as it reads
// chained ones.
func TestReplayTransitions(t *testing.T) {
	skipShort(t)
	t.Parallel()
	type sampled struct {
		Resource, Effect, Reason string
		Context                  struct {
			Principal string `json:"principal"`
			TTLHours  any    `json:"ttl_hours"`
		}
	}
	// count counts the sample's bridge decisions that match.
	count := func(match func(d sampled, ttl float64) bool) int {
		n := 0
		for line := range strings.Lines(string(readFile(t, decisionSample))) {
			var d sampled
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatal(err)
			}
			ttl, _ := d.Context.TTLHours.(float64)
			if d.Resource == bridge && match(d, ttl) {
				n++
			}
		}
		return n
	}
	replayJSON := func(reg, pol string, logs ...string) (int, map[string]int) {
		t.Helper()
		args := []string{"replay", "--registry", reg, "--policy", pol, "--format", "json"}
		for _, l := range logs {
			args = append(args, "--log", l)
		}
		code, out, errOut := runCLI(t, nil, args...)
		var rep struct {
			Decisions   int            `json:"decisions"`
			Transitions map[string]int `json:"transitions"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Decisions != 1000 {
			t.Fatalf("replay %v: exit %d, %v, %d decisions:\n%s%s", logs, code, err, rep.Decisions, out, errOut)
		}
		return code, rep.Transitions
	}
	for _, tt := range []struct {
		name, old, new string
		want           map[string]int
	}{
		{"the bridge's maximum raised to 48 hours", "    max_ttl_hours: 24\n    description: Bridge", "    max_ttl_hours: 48\n    description: Bridge", map[string]int{
			// Denied for a lifetime over 24 that is within 48: allowed.
			"deny_to_allow": count(func(d sampled, ttl float64) bool { return d.Reason == "ttl_out_of_bounds" && ttl > 24 && ttl <= 48 }),
		}},
		{"the bridge's principal renamed", "    principal: agt-task-bridge\n", "    principal: agt-task-runner\n", map[string]int{
			// Allowed for the old principal: now the wrong one.
			"allow_to_deny": count(func(d sampled, _ float64) bool {
				return d.Effect == "allow" && d.Context.Principal == "agt-task-bridge"
			}),
			// Refused the new principal only: now allowed.
			"deny_to_allow": count(func(d sampled, ttl float64) bool {
				return d.Reason == "principal_not_allowed" && d.Context.Principal == "agt-task-runner" && ttl >= 1 && ttl <= 24
			}),
			// Refused a lifetime while asking for the old principal:
			// refused, but for the principal, checked first.
			"reason_only": count(func(d sampled, _ float64) bool {
				return d.Reason == "ttl_out_of_bounds" && d.Context.Principal == "agt-task-bridge"
			}),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, n := range tt.want {
				if n == 0 {
					t.Fatalf("the sample has no decision for %s: the test checks nothing", k)
				}
			}
			reg, pol := editedPair(t, t.TempDir(), tt.old, tt.new)
			code, got := replayJSON(reg, pol, decisionSample)
			for _, k := range []string{"allow_to_deny", "deny_to_allow", "reason_only"} {
				if got[k] != tt.want[k] {
					t.Errorf("%s: got %d, want %d (transitions %v)", k, got[k], tt.want[k], got)
				}
			}
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
		})
	}

	t.Run("lines written before the chain", func(t *testing.T) {
		chainFields := regexp.MustCompile(`,"seq":\d+,"prev":"sha256:[0-9a-f]{64}"}\n`)
		old := chainFields.ReplaceAllString(string(readFile(t, decisionSample)), "}\n")
		if strings.Contains(old, `"seq"`) || strings.Count(old, "\n") != 1000 {
			t.Fatal("the sample's chain fields were not all removed")
		}
		unchained := filepath.Join(t.TempDir(), "unchained.jsonl")
		writeFile(t, unchained, []byte(old))
		if code, got := replayJSON(fixtureRegistry, fixturePolicy, unchained); code != 0 || got["allow_to_deny"]+got["deny_to_allow"]+got["reason_only"] != 0 {
			t.Errorf("under the pair that decided them: exit %d, transitions %v; want 0 and none", code, got)
		}
		reg, pol := changedPair(t, t.TempDir())
		if code, got := replayJSON(reg, pol, unchained); code != 1 || got["allow_to_deny"] != bridgeAllowsOver12(t) {
			t.Errorf("under the lowered lifetime: exit %d, transitions %v; want 1 and %d allow_to_deny", code, got, bridgeAllowsOver12(t))
		}
	})
}
