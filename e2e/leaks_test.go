package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/registry"
)

// canary marks what a rejected file holds in TestRejectedFilesDoNotLeak:
// it must never be seen outside the file.
const canary = "s3cr3t"

// rejected is a registry or policy file that serve refuses, holding the
// canary where its error would quote it.
type rejected struct {
	name   string
	policy bool // a policy package, else a registry
	data   []byte
	// says is in the message: the rule broken, or where.
	says string
}

// rejectedFiles makes one file for each kind of error a message could
// quote a file in: a value of the wrong type or form, a member or key
// name, a JSON or YAML syntax error, a CEL expression that does not
// compile, a Markdown info string, a test's name.
func rejectedFiles(t *testing.T) []rejected {
	fixture := loadFixture(t)
	reg := string(fixture.Canonical())
	pol := string(readFile(t, fixturePolicy))
	r := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(reg, old) {
			t.Fatalf("the registry fixture has no %q", old)
		}
		return []byte(strings.Replace(reg, old, new, 1))
	}
	p := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(pol, old) {
			t.Fatalf("the example policy has no %q", old)
		}
		return []byte(strings.Replace(pol, old, new, 1))
	}
	const unknownRule = "- reason: unknown_actor_resource\n  effect: deny\n  when: actor == null\n"
	other := registry.New(fixture.Source, canary+"/package", fixture.Actors)
	return []rejected{
		{"registry: schema", false, r(`"schema": "flex-auth.registry/v1"`, `"schema": "`+canary+`-schema"`), `schema: want "flex-auth.registry/v1", got <redacted>`},
		{"registry: a string for a TTL", false, r(`"default_ttl_hours": 48`, `"default_ttl_hours": "`+canary+`"`), "actors[0].default_ttl_hours: want an integer, got a string"},
		{"registry: principal", false, r(`"principal": "adm-full"`, `"principal": "`+canary+` principal"`), "actors[0].principal: invalid principal <redacted>: want"},
		{"registry: subject", false, r(`"iam:adm-example"`, `"iam:adm-example", "`+canary+` subject"`), "actors[0].subjects[2]: invalid subject <redacted>"},
		{"registry: actor name", false, r(`"name": "adm-example"`, `"name": "adm-`+strings.ToUpper(canary)+`"`), "actors[0].name: invalid actor name <redacted>"},
		{"registry: digest", false, r(fixture.Digest, "sha256:"+canary), `digest: want "sha256:" and 64 lowercase hex digits, got <redacted>`},
		{"registry: an unknown member", false, r(`"source"`, `"`+canary+`_token": 1, "source"`), "<redacted>: unknown member that looks like key material"},
		{"registry: an unknown member of an actor", false, r(`"type": "adm",`, `"type": "adm", "`+canary+`": 1,`), "actors[0].<redacted>: unknown member"},
		{"registry: a bare word", false, r(`"source": "ops-warden"`, `"source": `+canary), "not valid JSON"},
		{"registry: a lone surrogate", false, r(`"source": "ops-warden"`, `"source": "\ud800`+canary+`"`), "not valid JSON"},
		{"registry: another policy package", false, other.Canonical(), "is for another policy package than policy"},
		{"policy: a front matter key", true, p("version: 1\n", "version: 1\n"+canary+"_key: 1\n"), "front matter: unknown key <redacted>"},
		{"policy: version", true, p("version: 1\n", "version: "+canary+"\n"), "front matter: version must be an integer, got a string"},
		{"policy: an undeclared name", true, p("when: actor == null", "when: actor == null || "+canary+"_var"), "when: not valid CEL (column"},
		{"policy: CEL syntax", true, p("when: actor == null", `when: "`+canary+` ))"`), "when: not valid CEL (column"},
		{"policy: an actor member", true, p("when: actor == null", "when: actor == null || actor."+canary+" == 1"), "when: actor has no member <redacted>"},
		{"policy: a YAML alias", true, p("when: actor == null", "when: *"+canary), "rules block: invalid YAML: <redacted>"},
		{"policy: a reason", true, p("reason: unknown_actor_resource", "reason: "+strings.ToUpper(canary)), "invalid reason <redacted>"},
		{"policy: an info string", true, []byte(pol + "\n```rules{" + canary + "}\n" + unknownRule + "```\n"), "fenced block with the info string <redacted>"},
		{"policy: a fence inside HTML", true, []byte(pol + "\n<details " + canary + ">\n```rules\n" + unknownRule + "```\n</details>\n"), `a "rules" fence inside the HTML block that starts at line`},
		{"policy: a test's name", true, []byte(strings.Replace(string(p("- name: adm-example signs with its name\n", "- name: "+canary+" test\n")),
			"expect: {effect: allow, reason: signing_policy_matched}", "expect: {effect: allow, reason: no_such_reason}", 1)),
			"expect: no rule or default of this package has the reason <redacted>"},
	}
}

// TestRejectedFilesDoNotLeak rejects, on reload and at start-up, registry
// and policy files holding a canary wherever an error would quote them:
// /healthz (which anyone may read), serve's stderr, in text and JSON, and
// the decision log name the file, where in it and the rule broken, and
// never the canary; a message is at most 512 bytes.
func TestRejectedFilesDoNotLeak(t *testing.T) {
	skipShort(t)
	t.Parallel()
	files := rejectedFiles(t)
	// The test's own test: the commands for the operator's files, which
	// name what they refuse, show the canary.
	for _, f := range files {
		if !f.policy && f.name == "registry: principal" {
			dir := t.TempDir()
			p := filepath.Join(dir, "r.json")
			if err := os.WriteFile(p, f.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, stderr := runCLI(t, cleanEnv, "load-registry", "--file", p); !strings.Contains(stderr, canary) {
				t.Fatalf("load-registry of %s: stderr %q does not show the canary: the test proves nothing", f.name, stderr)
			}
		}
	}

	for _, format := range []string{"text", "json"} {
		t.Run("reload, "+format, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "--log-format", format)
			good := map[bool][]byte{false: readFile(t, s.Registry), true: readFile(t, s.Policy)}
			for _, f := range files {
				file := s.Registry
				if f.policy {
					file = s.Policy
				}
				since := time.Now()
				writeFile(t, file, f.data)
				s.signal(sighup)
				h := s.waitReloaded(since, "degraded")
				body := string(s.do("GET", "/healthz", "", nil).Body)
				if strings.Contains(strings.ToLower(body), canary) {
					t.Errorf("%s: /healthz shows the file's content: %s", f.name, body)
				}
				msg := str(h, "reload.last_error")
				if !strings.Contains(msg, file) || !strings.Contains(msg, f.says) {
					t.Errorf("%s: reload.last_error %q, want it to name %s and say %q", f.name, msg, file, f.says)
				}
				if len(msg) > 512 {
					t.Errorf("%s: reload.last_error is %d bytes, want at most 512", f.name, len(msg))
				}
				// Decisions go on, from the last good pair, and are logged.
				if r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}); r.Status != 200 {
					t.Errorf("%s: check: got %d %s, want 200", f.name, r.Status, r.Body)
				}
				writeFile(t, file, good[f.policy])
			}
			for what, text := range map[string]string{"stderr": s.stderr.String(), "decision log": string(readFile(t, s.Log))} {
				if strings.Contains(strings.ToLower(text), canary) {
					t.Errorf("%s shows a rejected file's content:\n%s", what, text)
				}
			}
			if n := strings.Count(s.stderr.String(), "reload failed"); n != len(files) {
				t.Errorf("stderr: %d reload failures logged, want %d:\n%s", n, len(files), s.stderr)
			}
		})
	}

	t.Run("start-up", func(t *testing.T) {
		t.Parallel()
		for _, f := range files {
			s := newServer(t)
			file := s.Registry
			if f.policy {
				file = s.Policy
			}
			writeFile(t, file, f.data)
			s.launch(t, s.serveArgs("--log-format", "json")...)
			if code := s.wait(); code != 1 {
				t.Errorf("%s: exit %d, want 1", f.name, code)
			}
			stderr := s.stderr.String()
			if strings.Contains(strings.ToLower(stderr), canary) || !strings.Contains(stderr, file) || !strings.Contains(stderr, f.says) {
				t.Errorf("%s: stderr %q, want it to name %s and say %q, without the file's content", f.name, stderr, file, f.says)
			}
			if len(stderr) > len("flex-auth: serve: ")+512+1 {
				t.Errorf("%s: stderr is %d bytes, want one line of at most 512", f.name, len(stderr))
			}
		}
	})
}
