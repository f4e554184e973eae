package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Policy packages cannot be made to burn the server, nor to say more than
// a reader of the Markdown sees, nor to allow what the registry forbids
// (docs/policy-packages.md).

// withRule returns the example package with rule (YAML list items)
// inserted before its last rule, and the line the insertion starts at.
func withRule(t *testing.T, policy []byte, rule string) ([]byte, int) {
	t.Helper()
	const last = "- reason: signing_policy_matched\n"
	i := strings.Index(string(policy), last)
	if i < 0 {
		t.Fatalf("example policy has no %q", last)
	}
	line := strings.Count(string(policy[:i]), "\n") + 1
	return []byte(string(policy[:i]) + rule + "\n" + string(policy[i:])), line
}

// wantStartupFailure runs serve on s's files and checks that it exits 1
// with a last stderr line that holds every one of want.
func wantStartupFailure(t *testing.T, s *server, want ...string) {
	t.Helper()
	s.launch(t, s.serveArgs()...)
	if code := s.wait(); code != 1 {
		t.Fatalf("exit code: got %d, want 1", code)
	}
	stderr := strings.TrimRight(s.stderr.String(), "\n")
	last := stderr[strings.LastIndexByte(stderr, '\n')+1:]
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("stderr: got %q, want its last line to contain %q", stderr, w)
		}
	}
	if listenRE.MatchString(stderr) {
		t.Errorf("stderr: got %q, want nothing served", stderr)
	}
}

// concatenations is the rule that made one request cost half a second and
// 1.8 GB when only loops had a cost limit: 240 concatenations of a 64 KiB
// string, each copying all the ones before.
func concatenations() string {
	terms := make([]string, 240)
	for i := range terms {
		terms[i] = "context.a"
	}
	return "- reason: too_costly\n  effect: deny\n  when: \"" + strings.Join(terms, " + ") + " == ''\"\n"
}

// TestPolicyCostLimit checks that a package that could cost more than the
// cost limit to decide a 64 KiB request is refused, at start-up and on
// reload, naming the rule and its line; and that a package within it
// decides the worst request for it.
func TestPolicyCostLimit(t *testing.T) {
	skipShort(t)
	t.Parallel()
	// serve names the line, not the rule: its name is the file's.
	costMsg := regexp.MustCompile(`:[0-9]+: when: may cost [0-9,]+ units to decide a request of 64 KiB; a package may cost at most [0-9,]+`)

	t.Run("refused at start-up", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		policy, line := withRule(t, readFile(t, s.Policy), concatenations())
		writeFile(t, s.Policy, policy)
		wantStartupFailure(t, s, fmt.Sprintf("%s:%d", s.Policy, line))
		if !costMsg.MatchString(s.stderr.String()) {
			t.Errorf("stderr: got %q, want it to match %s", s.stderr, costMsg)
		}
	})

	t.Run("refused on reload", func(t *testing.T) {
		t.Parallel()
		s := startServer(t)
		good := readFile(t, s.Policy)
		policy, line := withRule(t, good, concatenations())
		writeFile(t, s.Policy, policy)
		since := time.Now()
		s.signal(sighup)
		h := s.waitReloaded(since, "degraded")
		lastErr, _ := path(h, "reload.last_error").(string)
		if !strings.Contains(lastErr, fmt.Sprintf("%s:%d", filepath.Base(s.Policy), line)) || !costMsg.MatchString(lastErr) {
			t.Errorf("reload.last_error: got %q, want the policy file, line %d and %s", lastErr, line, costMsg)
		}
		r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24, "a": strings.Repeat("a", 60<<10)}})
		if d := r.JSON(t); str(d, "effect")+" "+str(d, "reason") != "allow signing_policy_matched" {
			t.Errorf("while degraded: got %s, want the last good policy's allow", r.Body)
		}
	})

	t.Run("a package within the limit decides its worst request", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		// A loop over a list the client sends: the longest a 64 KiB body
		// holds is 32,000 zeros.
		policy, _ := withRule(t, readFile(t, s.Policy), "- reason: listed\n  effect: deny\n  when: \"'l' in context && context.l.exists(x, x == 1)\"\n")
		writeFile(t, s.Policy, policy)
		s.start(t, s.serveArgs()...)
		zeros := make([]int, 32_000)
		r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24, "l": zeros}})
		if d := r.JSON(t); r.Status != 200 || str(d, "effect")+" "+str(d, "reason") != "allow signing_policy_matched" {
			t.Errorf("got %d %s, want allow signing_policy_matched", r.Status, r.Body)
		}
		zeros[len(zeros)-1] = 1
		r = s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24, "l": zeros}})
		if d := r.JSON(t); r.Status != 200 || str(d, "effect")+" "+str(d, "reason") != "deny listed" {
			t.Errorf("got %d %s, want deny listed", r.Status, r.Body)
		}
	})
}

// TestPolicyMarkdown checks that flex-auth reads a package the way a
// reader of its Markdown does: a rules block inside <details> counts when
// Markdown shows it as code; one that Markdown shows as raw text, and an
// info string that reads as rules without being exactly that, are refused
// rather than skipped; and a package that allows everything must say so.
func TestPolicyMarkdown(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const openRule = "- reason: open\n  effect: allow\n  when: \"true\"\n"
	appendBlock := func(block string) func(t *testing.T, policy string) string {
		return func(t *testing.T, policy string) string { return policy + "\n" + block }
	}
	allowAll := func(extra string) func(t *testing.T, policy string) string {
		return func(t *testing.T, policy string) string {
			return "---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: allow, reason: open}\n" + extra + "---\n# Open\n\n```rules\n[]\n```\n"
		}
	}
	// want is in serve's start-up error, which quotes nothing from the
	// file; wantCLI, when set, in what policy test says of the same
	// file, which does.
	refused := []struct {
		name    string
		policy  func(t *testing.T, policy string) string
		want    string
		wantCLI string
	}{
		{"a hidden rules block in details without a blank line",
			appendBlock("<details>\n<summary>More rules</summary>\n```rules\n" + openRule + "```\n</details>\n"),
			`: a "rules" fence inside the HTML block that starts at line`, ""},
		{"a tests block in details without a blank line",
			appendBlock("<details><summary>More tests</summary>\n~~~tests\n[]\n~~~\n</details>\n"),
			`: a "tests" fence inside the HTML block that starts at line`, ""},
		{"a capitalized info string",
			appendBlock("```Rules\n" + openRule + "```\n"),
			`: fenced block with the info string <redacted>: the first word of a rules block's info string must be exactly "rules"`,
			`: fenced block with the info string "Rules": the first word of a rules block's info string must be exactly "rules"`},
		{"attributes without a space",
			appendBlock("```rules{.cel}\n" + openRule + "```\n"),
			`: fenced block with the info string <redacted>: the first word of a rules block's info string must be exactly "rules"`,
			`: fenced block with the info string "rules{.cel}"`},
		{"a default that allows and no rules",
			allowAll(""),
			`:4: front matter: default: the default allows and no rule denies, so the package allows every request: if that is meant, say so with allow_all: true`, ""},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			writeFile(t, s.Policy, []byte(tt.policy(t, string(readFile(t, s.Policy)))))
			wantStartupFailure(t, s, s.Policy+":", tt.want)
			if tt.wantCLI == "" {
				return
			}
			code, _, stderr := runCLI(t, cleanEnv, "policy", "test", "--policy", s.Policy, "--registry", s.Registry)
			if code != 1 || !strings.Contains(stderr, s.Policy+":") || !strings.Contains(stderr, tt.wantCLI) {
				t.Errorf("policy test: got exit %d, stderr %q; want 1 and %q", code, stderr, tt.wantCLI)
			}
		})
	}

	served := []struct {
		name   string
		policy func(t *testing.T, policy string) string
		// what the bridge gets asking for 24 hours, and for 999
		want24, want999 string
	}{
		{"the rules inside details, with attributes", func(t *testing.T, policy string) string {
			start := strings.Index(policy, "```rules\n")
			end := start + strings.Index(policy[start+3:], "```\n") + 3
			if start < 0 || end < start+3 {
				t.Fatal("example policy has no rules block")
			}
			return policy[:start] + "<details>\n<summary>Rules</summary>\n\n```rules {.yaml title=\"Rules\"}\n" +
				policy[start+len("```rules\n"):end] + "```\n\n</details>\n" + policy[end+4:]
		}, "allow signing_policy_matched", "deny ttl_out_of_bounds"},
		{"a rules fence in an HTML comment, which nobody sees",
			appendBlock("<!--\n```rules\n" + openRule + "```\n-->\n"),
			"allow signing_policy_matched", "deny ttl_out_of_bounds"},
		{"a package that says it allows everything",
			allowAll("allow_all: true\n"),
			"allow open", "deny policy_error"},
	}
	for _, tt := range served {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			writeFile(t, s.Policy, []byte(tt.policy(t, string(readFile(t, s.Policy)))))
			s.start(t, s.serveArgs()...)
			for _, c := range []struct {
				ttl  int
				want string
			}{{24, tt.want24}, {999, tt.want999}} {
				d := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": c.ttl}}).JSON(t)
				if got := str(d, "effect") + " " + str(d, "reason"); got != c.want {
					t.Errorf("ttl %d: got %s, want %s", c.ttl, got, c.want)
				}
			}
		})
	}
}

// TestPolicyBackstop serves a package that allows everything, after a
// deny rule that never matches (so it needs no allow_all): every allow
// the registry forbids is answered deny policy_error with no grant, logged
// as such, and the operational log says which registry rule the policy
// broke. policy test sees the same.
func TestPolicyBackstop(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newServer(t)
	policy := "---\npackage: ops-warden/ssh-signing\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n---\n# Open\n\n```rules\n" +
		"- reason: never\n  effect: deny\n  when: \"false\"\n" +
		"- reason: open\n  effect: allow\n  when: \"true\"\n" + // line 12
		"```\n"
	writeFile(t, s.Policy, []byte(policy))
	s.start(t, s.serveArgs()...)
	ctx := contextOf
	tests := []struct {
		name    string
		req     checkRequest
		broken  string // the registry rule the operational log names; "" for an allow
		wantTTL string
	}{
		{"as the registry says", checkRequest{"iam:" + bridge, "ssh.sign", bridge, ctx("principal", "agt-task-bridge", "ttl_hours", 12)}, "", "12"},
		{"no TTL: the actor's default", checkRequest{bridge, "ssh.sign", bridge, nil}, "", "24"},
		{"unknown actor", checkRequest{"agt-nobody", "ssh.sign", "agt-nobody", ctx("ttl_hours", 1)}, "the resource is not an actor in the registry", ""},
		{"another actor's subject", checkRequest{"iam:adm-example", "ssh.sign", bridge, ctx("ttl_hours", 1)}, `the subject is not bound to actor \"agt-state-hub-bridge\"`, ""},
		{"a subject bound to nobody", checkRequest{"iam:role/admin", "ssh.sign", bridge, ctx("ttl_hours", 1)}, `the subject is not bound to actor \"agt-state-hub-bridge\"`, ""},
		{"another actor's principal", checkRequest{bridge, "ssh.sign", bridge, ctx("principal", "adm-full", "ttl_hours", 1)}, `context.principal is not actor \"agt-state-hub-bridge\"'s principal`, ""},
		{"a principal that is not a string", checkRequest{bridge, "ssh.sign", bridge, ctx("principal", 7, "ttl_hours", 1)}, `context.principal is not actor \"agt-state-hub-bridge\"'s principal`, ""},
		{"TTL 0", checkRequest{bridge, "ssh.sign", bridge, ctx("ttl_hours", 0)}, `context.ttl_hours is not an integer from 1 to actor \"agt-state-hub-bridge\"'s max_ttl_hours 24`, ""},
		{"TTL over the max", checkRequest{bridge, "ssh.sign", bridge, ctx("ttl_hours", 25)}, "context.ttl_hours is not an integer from 1", ""},
		{"TTL as a string", checkRequest{bridge, "ssh.sign", bridge, ctx("ttl_hours", "24")}, "context.ttl_hours is not an integer from 1", ""},
		{"TTL as a fraction", checkRequest{bridge, "ssh.sign", bridge, ctx("ttl_hours", 1.5)}, "context.ttl_hours is not an integer from 1", ""},
	}
	var ids []string
	for _, tt := range tests {
		r := s.check(tt.req)
		if r.Status != 200 {
			t.Fatalf("%s: got %d %s, want 200", tt.name, r.Status, r.Body)
		}
		d := r.JSON(t)
		ids = append(ids, str(d, "decision_id"))
		got := str(d, "effect") + " " + str(d, "reason")
		switch {
		case tt.broken == "" && (got != "allow open" || fmt.Sprint(path(d, "grant.ttl_hours")) != tt.wantTTL):
			t.Errorf("%s: got %s, want allow open for %s hours", tt.name, r.Body, tt.wantTTL)
		case tt.broken != "" && (got != "deny policy_error" || d["grant"] != nil):
			t.Errorf("%s: got %s, want deny policy_error and no grant", tt.name, r.Body)
		case tt.broken != "":
			want := `msg="policy allowed what the registry forbids; denied" err="rule \"open\" (line 12) allowed a request the registry forbids: ` + tt.broken
			if !waitOutput(s.stderr, want, s.exited) {
				t.Errorf("%s: stderr has no line with %q:\n%s", tt.name, want, s.stderr)
			}
		}
	}
	lines, _ := readLog(t, readFile(t, s.Log))
	if len(lines) != len(tests) {
		t.Fatalf("decision log: got %d lines, want %d", len(lines), len(tests))
	}
	for i, l := range lines {
		want := "policy_error"
		if tests[i].broken == "" {
			want = "open"
		}
		if l.str("decision_id") != ids[i] || l.str("reason") != want {
			t.Errorf("decision log line %d: got %s %s, want %s %s", i+1, l.str("decision_id"), l.str("reason"), ids[i], want)
		}
	}

	t.Run("policy test", func(t *testing.T) {
		withTests := policy + "\n```tests\n" +
			"- name: registered\n  request: {subject: adm-example, resource: adm-example}\n  expect: {effect: allow, reason: open}\n" +
			"- name: another actor's subject\n  request: {subject: adm-example, resource: atm-backup-daily}\n  expect: {effect: allow, reason: open}\n```\n"
		writeFile(t, s.Policy, []byte(withTests))
		code, stdout, _ := runCLI(t, cleanEnv, "policy", "test", "--policy", s.Policy, "--registry", s.Registry)
		want := `error: rule "open" (line 12) allowed a request the registry forbids: the subject is not bound to actor "atm-backup-daily"`
		if code != 1 || !strings.Contains(stdout, "PASS registered\n") || !strings.Contains(stdout, want) {
			t.Errorf("exit %d, stdout:\n%s\nwant exit 1, registered passing, and %q", code, stdout, want)
		}
	})
}
