package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/policy"
)

const (
	examplePolicyFile   = "../../examples/ops-warden/policy_package.md"
	exampleRegistryFile = "../../examples/ops-warden/production_registry_snapshot.json"
)

// failingPackage has one passing and two failing tests, one of them failing
// on an evaluation error.
const failingPackage = `---
package: ops-warden/ssh-signing
version: 1
default: {effect: deny, reason: no_rule_matched}
---
` + "```rules" + `
- reason: needs_ticket
  effect: deny
  when: context.ticket == ""
- reason: ok
  effect: allow
  when: "true"
` + "```" + `

` + "```tests" + `
- name: a ticket allows
  request: {subject: adm-example, resource: adm-example, context: {ticket: T-1}}
  expect: {effect: allow, reason: ok}
- name: an empty ticket is wrongly expected to allow
  request: {subject: adm-example, resource: adm-example, context: {ticket: ""}}
  expect: {effect: allow, reason: ok}
- name: no ticket at all
  request: {subject: adm-example, resource: adm-example}
  expect: {effect: deny, reason: needs_ticket}
` + "```\n"

func TestPolicyTestCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	failing := write("failing.md", failingPackage)
	broken := write("broken.md", strings.Replace(failingPackage, "effect: deny\n  when", "effect: refuse\n  when", 1))
	other := write("other.md", strings.Replace(failingPackage, "package: ops-warden/ssh-signing", "package: other/pkg", 1))
	// open allows everything, and its second test expects an allow the
	// registry forbids: the backstop denies it, as the server would.
	open := write("open.md", strings.Replace(failingPackage, "when: context.ticket == \"\"", "when: \"false\"", 1)+
		"```tests\n- name: another actor's subject\n  request: {subject: adm-example, resource: atm-backup-daily}\n  expect: {effect: allow, reason: ok}\n```\n")
	failingPkg, err := policy.Load(failing)
	if err != nil {
		t.Fatal(err)
	}
	examplePkg, err := policy.Load(examplePolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Package directories: the failing package with the example registry
	// as its data, one naming no data, one naming a file that is not there.
	pkgDir := func(name, src string, files ...string) string {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "policy_package.md"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(exampleRegistryFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	withData := func(src string) string {
		return strings.Replace(src, "default:", "data: {registry: registry.json}\ndefault:", 1)
	}
	failingSrc, err := os.ReadFile(failing)
	if err != nil {
		t.Fatal(err)
	}
	failingDir := pkgDir("failing", withData(string(failingSrc)), "registry.json")
	noDataDir := pkgDir("nodata", string(failingSrc))
	noFileDir := pkgDir("nofile", withData(string(failingSrc)))
	const regDigest = "sha256:57522a4d7480d7d72febe4e0fb97a792086beb7cdec90afa09f5fbe0905e4e13"

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // lines, in order, that stdout must hold
		wantExact  string   // the whole of stdout, when set
		wantStderr string   // substring of stderr; "" means stderr must be empty
	}{
		{
			name:     "the example passes",
			args:     []string{"policy", "test", "--policy", examplePolicyFile, "--registry", exampleRegistryFile},
			wantCode: 0,
			wantStdout: []string{
				"PASS adm-example signs with its name",
				"PASS bridge ttl 999 is refused (the runbook's deny smoke)",
				"PASS other context members are ignored",
				"44 passed, 0 failed",
			},
		},
		{
			name:     "every example package passes, each with its data",
			args:     []string{"policy", "test", "--package", "../../examples/ops-warden", "--package", "../../examples/authzen-certification", "--package", "../../examples/authzen-todo"},
			wantCode: 0,
			wantStdout: []string{
				"policy ops-warden/ssh-signing " + examplePkg.Digest() + ", registry " + regDigest + " (4 actors)",
				"44 passed, 0 failed",
				"",
				"PASS rule 1: alice may read record-1",
				"18 passed, 0 failed",
				"",
				"PASS the roles come from the data, not the request",
				"15 passed, 0 failed",
			},
		},
		{
			name:     "a failure in one package of several fails the run",
			args:     []string{"policy", "test", "--package", "../../examples/authzen-todo", "--package", failingDir},
			wantCode: 1,
			wantStdout: []string{
				"15 passed, 0 failed",
				"FAIL an empty ticket is wrongly expected to allow (" + filepath.Join(failingDir, "policy_package.md") + ":20)",
				"1 passed, 2 failed",
			},
		},
		{
			name:       "a package directory whose front matter names no data",
			args:       []string{"policy", "test", "--package", noDataDir},
			wantCode:   1,
			wantStderr: "its front matter names no data",
		},
		{
			name:       "a package directory without its data file",
			args:       []string{"policy", "test", "--package", noFileDir},
			wantCode:   1,
			wantStderr: filepath.Join(noFileDir, "registry.json") + ": no such file or directory",
		},
		{
			name:       "--package and --policy do not mix",
			args:       []string{"policy", "test", "--package", "../../examples/ops-warden", "--policy", examplePolicyFile},
			wantCode:   1,
			wantStderr: "give --package, or --policy and --registry, not both",
		},
		{
			name:     "failures are reported with got and want",
			args:     []string{"policy", "test", "--registry", exampleRegistryFile, "--policy", failing},
			wantCode: 1,
			wantExact: "policy ops-warden/ssh-signing " + failingPkg.Digest() + ", registry " + regDigest + " (4 actors)\n" +
				"PASS a ticket allows\n" +
				"FAIL an empty ticket is wrongly expected to allow (" + failing + ":19)\n" +
				"     got:  deny needs_ticket\n" +
				"     want: allow ok\n" +
				"FAIL no ticket at all (" + failing + ":22)\n" +
				"     got:  deny policy_error\n" +
				"     want: deny needs_ticket\n" +
				"     error: rule \"needs_ticket\" (line 7): no such key: ticket\n" +
				"1 passed, 2 failed\n",
		},
		{
			name:     "an allow the registry forbids is denied, as the server denies it",
			args:     []string{"policy", "test", "--policy", open, "--registry", exampleRegistryFile},
			wantCode: 1,
			wantStdout: []string{
				"PASS a ticket allows",
				"FAIL another actor's subject (" + open + ":27)",
				"     got:  deny policy_error",
				"     want: allow ok",
				`     error: rule "ok" (line 10) allowed a request the registry forbids: the subject is not bound to actor "atm-backup-daily"`,
			},
		},
		{
			name:       "a broken package does not load",
			args:       []string{"policy", "test", "--policy", broken, "--registry", exampleRegistryFile},
			wantCode:   1,
			wantStderr: broken + `:8: rule "needs_ticket": effect must be allow or deny, got "refuse"`,
		},
		{
			name:       "a registry for another package is refused",
			args:       []string{"policy", "test", "--policy", other, "--registry", exampleRegistryFile},
			wantCode:   1,
			wantStderr: `registry policy_package does not match the policy package: the registry is for "ops-warden/ssh-signing"`,
		},
		{
			name:       "a missing registry file",
			args:       []string{"policy", "test", "--policy", examplePolicyFile, "--registry", filepath.Join(dir, "nope.json")},
			wantCode:   1,
			wantStderr: "nope.json: no such file or directory",
		},
		{
			name:       "a missing policy file",
			args:       []string{"policy", "test", "--policy", filepath.Join(dir, "nope.md"), "--registry", exampleRegistryFile},
			wantCode:   1,
			wantStderr: "load policy package: open " + filepath.Join(dir, "nope.md") + ": no such file or directory",
		},
		{
			name:       "--policy is required",
			args:       []string{"policy", "test", "--registry", exampleRegistryFile},
			wantCode:   1,
			wantStderr: "give --package DIR, or both --policy and --registry",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, &stdout, &stderr)
			}
			out := stdout.String()
			if tt.wantExact != "" && out != tt.wantExact {
				t.Errorf("stdout:\ngot:\n%s\nwant:\n%s", out, tt.wantExact)
			}
			rest := out
			for _, line := range tt.wantStdout {
				i := strings.Index(rest, line+"\n")
				if i < 0 {
					t.Errorf("stdout: got\n%s\nwant the line %q (after the previous ones)", out, line)
					break
				}
				rest = rest[i+len(line):]
			}
			switch errOut := stderr.String(); {
			case tt.wantStderr == "" && errOut != "":
				t.Errorf("stderr: got %q, want nothing", errOut)
			case !strings.Contains(errOut, tt.wantStderr):
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantStderr)
			}
		})
	}
}
