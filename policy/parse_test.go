package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pkgSrc builds a package from its front matter, rules block and tests
// block bodies; an empty tests body leaves the block out. Lines: the front
// matter starts on line 2, the rules block's first line is line 9 when the
// front matter has three lines.
func pkgSrc(front, rules, tests string) string {
	s := "---\n" + front + "---\n# Title\n\nProse.\n```rules\n" + rules + "```\n"
	if tests != "" {
		s += "\n```tests\n" + tests + "```\n"
	}
	return s
}

const (
	goodFront = "package: test/pkg\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n"
	goodRules = "- reason: known\n  effect: allow\n  when: actor != null\n"
	azRules   = "- reason: a\n  effect: allow\n  when: subject.id in data.user\n"
	goodTest  = "- name: t\n  request: {subject: adm-example, resource: adm-example}\n  expect: {effect: allow, reason: known}\n"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // every error line, without the "f.md:" prefix
	}{
		{
			name: "no front matter",
			src:  "# Policy\n```rules\n[]\n```\n",
			want: []string{`1: missing front matter: the file must start with a line "---"`},
		},
		{
			name: "front matter not closed",
			src:  "---\npackage: a/b\n",
			want: []string{`1: front matter is not closed: no line "---" after the first`},
		},
		{
			name: "empty front matter",
			src:  "---\n---\n```rules\n[]\n```\n",
			want: []string{`2: front matter is empty: want package, version, default`},
		},
		{
			name: "front matter is not a mapping",
			src:  "---\n- package\n---\n```rules\n[]\n```\n",
			want: []string{`2: front matter: must be a mapping, got a list`},
		},
		{
			name: "unknown front matter key",
			src:  pkgSrc("pakage: test/pkg\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			want: []string{
				`2: front matter: unknown key "pakage" (did you mean "package"?)`,
				`2: front matter: missing key "package"`,
			},
		},
		{
			name: "duplicate front matter key",
			src:  pkgSrc(goodFront+"version: 1\n", goodRules, ""),
			want: []string{`5: front matter: duplicate key "version" (the first is at line 3)`},
		},
		{
			name: "bad package name",
			src:  pkgSrc("package: Ops/Signing\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			want: []string{`2: front matter: package: invalid name "Ops/Signing": want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most 128 bytes`},
		},
		{
			name: "package not a string",
			src:  pkgSrc("package: [a]\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			want: []string{`2: front matter: package must be a string, got a list`},
		},
		{
			name: "unsupported version",
			src:  pkgSrc("package: test/pkg\nversion: 2\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			want: []string{`3: front matter: unsupported version 2: 1 is the only version understood`},
		},
		{
			name: "version as a string",
			src:  pkgSrc("package: test/pkg\nversion: \"1\"\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			want: []string{`3: front matter: version must be an integer, got "1"`},
		},
		{
			name: "bad default",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: block, reason: No}\n", goodRules, ""),
			want: []string{
				`4: front matter: default: effect must be allow or deny, got "block"`,
				`4: front matter: default: invalid reason "No": want ^[a-z][a-z0-9_]*$`,
			},
		},
		{
			name: "default without a reason",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: deny}\n", goodRules, ""),
			want: []string{`4: front matter: default: missing key "reason"`},
		},
		{
			name: "default reason policy_error",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: deny, reason: policy_error}\n", goodRules, ""),
			want: []string{`4: front matter: default: reason "policy_error" is reserved for evaluation errors`},
		},
		{
			name: "front matter YAML syntax error",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: deny\n", goodRules, ""),
			want: []string{`4: front matter: invalid YAML: did not find expected ',' or '}'`},
		},
		{
			name: "data names no kind",
			src:  pkgSrc(goodFront+"data: {}\n", goodRules, ""),
			want: []string{`5: front matter: data: name one file, as registry: FILE or entities: FILE`},
		},
		{
			name: "data names two files",
			src:  pkgSrc(goodFront+"data: {registry: r.json, entities: e.yaml}\n", goodRules, ""),
			want: []string{`5: front matter: data: name one file, as registry: FILE or entities: FILE`},
		},
		{
			name: "data of an unknown kind",
			src:  pkgSrc(goodFront+"data: {registy: r.json}\n", goodRules, ""),
			want: []string{`5: front matter: data: unknown key "registy" (did you mean "registry"?)`},
		},
		{
			name: "data is a string",
			src:  pkgSrc(goodFront+"data: r.json\n", goodRules, ""),
			want: []string{`5: front matter: data: must be a mapping, got "r.json"`},
		},
		{
			name: "data outside the package directory",
			src:  pkgSrc(goodFront+"data: {registry: ../r.json}\n", goodRules, ""),
			want: []string{`5: front matter: data: registry: "../r.json": name a file in the package's directory, without a path`},
		},
		{
			name: "data file is not a name",
			src:  pkgSrc(goodFront+"data: {entities: '..'}\n", goodRules, ""),
			want: []string{`5: front matter: data: entities: ".." is not a file name`},
		},
		{
			name: "resource types on a registry package",
			src:  pkgSrc(goodFront+"resource_types: [actor]\n", goodRules, ""),
			want: []string{`5: front matter: resource_types: only a package whose data is an entities document declares resource types; a registry package decides resources of type "actor"`},
		},
		{
			name: "bad resource types",
			src:  pkgSrc(goodFront+"data: {entities: e.yaml}\nresource_types: [a, '', 1, a]\n", azRules, ""),
			want: []string{
				`6: front matter: resource_types[1] must be a non-empty string, got ""`,
				`6: front matter: resource_types[2] must be a non-empty string, got the integer 1`,
				`6: front matter: resource_types: "a" is listed twice`,
			},
		},
		{
			name: "resource types not a list",
			src:  pkgSrc(goodFront+"data: {entities: e.yaml}\nresource_types: a\n", azRules, ""),
			want: []string{`6: front matter: resource_types must be a list of AuthZEN resource types, got "a"`},
		},
		{
			name: "an AuthZEN package has no actor",
			src:  pkgSrc(goodFront+"data: {entities: e.yaml}\n", goodRules, ""),
			want: []string{`13: rule "known": when: undeclared reference to 'actor' (did you mean 'action'?) (column 1)`},
		},
		{
			name: "an AuthZEN package's entities have fixed members",
			src: pkgSrc(goodFront+"data: {entities: e.yaml}\n",
				"- reason: a\n  effect: allow\n  when: subject.propertis.x == 1\n- reason: b\n  effect: deny\n  when: resource['typ'] == 'x'\n- reason: c\n  effect: deny\n  when: action.id == 'x'\n", ""),
			want: []string{
				`13: rule "a": when: subject has no member "propertis" (did you mean "properties"?); members: type, id, properties`,
				`16: rule "b": when: resource has no member "typ" (did you mean "type"?); members: type, id, properties`,
				`19: rule "c": when: action has no member "id"; members: name, properties`,
			},
		},
		{
			name: "an AuthZEN package's tests are in AuthZEN's form",
			src: pkgSrc(goodFront+"data: {entities: e.yaml}\n", azRules,
				"- name: strings\n  request: {subject: alice, action: read, resource: r}\n  expect: {effect: allow, reason: a}\n"+
					"- name: missing\n  request: {subject: {id: alice, props: {}}, resource: {type: r, id: ''}}\n  expect: {effect: allow, reason: a}\n"+
					"- name: properties\n  request: {subject: {type: u, id: a, properties: [1]}, action: {name: r, properties: 1}, resource: {type: r, id: r}, context: 2}\n  expect: {effect: allow, reason: a}\n"),
			want: []string{
				`18: test "strings": request: subject: must be a mapping, got "alice"`,
				`18: test "strings": request: resource: must be a mapping, got "r"`,
				`18: test "strings": request: action: must be a mapping, got "read"`,
				`21: test "missing": request: missing key "action"`,
				`21: test "missing": request: subject: unknown key "props"`,
				`21: test "missing": request: subject: missing key "type"`,
				`21: test "missing": request: resource: id must not be empty`,
				`24: test "properties": request: subject: properties must be a mapping, got a list`,
				`24: test "properties": request: action: properties must be a mapping, got the integer 1`,
				`24: test "properties": request: context must be a mapping, got the integer 2`,
			},
		},
		{
			name: "no rules block",
			src:  "---\n" + goodFront + "---\n# Policy\n```yaml\n[]\n```\n",
			want: []string{`6: no fenced code block with the info string "rules": a package has exactly one`},
		},
		{
			name: "two rules blocks",
			src:  pkgSrc(goodFront, goodRules, "") + "\n```rules\n[]\n```\n",
			want: []string{`15: second "rules" block (the first is at line 9): a package has exactly one`},
		},
		{
			name: "empty rules block",
			src:  pkgSrc(goodFront, "", ""),
			want: []string{`9: rules block is empty: write [] for a package that always decides its default`},
		},
		{
			name: "rules block is a mapping",
			src:  pkgSrc(goodFront, "reason: x\n", ""),
			want: []string{`10: rules block must be a YAML list of rules, got a mapping`},
		},
		{
			name: "rule is not a mapping",
			src:  pkgSrc(goodFront, "- actor == null\n", ""),
			want: []string{`10: rule 1: must be a mapping with reason, effect, when, got "actor == null"`},
		},
		{
			name: "unknown, duplicate and missing rule keys",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  wen: actor == null\n- reason: b\n  reason: c\n  effect: deny\n  when: \"true\"\n", ""),
			want: []string{
				`10: rule "a": missing key "when"`,
				`12: rule "a": unknown key "wen" (did you mean "when"?)`,
				`14: rule "b": duplicate key "reason" (the first is at line 13)`,
			},
		},
		{
			name: "invalid reason and effect",
			src:  pkgSrc(goodFront, "- reason: Not-Valid\n  effect: permit\n  when: \"true\"\n", ""),
			want: []string{
				`10: rule "Not-Valid": invalid reason "Not-Valid": want ^[a-z][a-z0-9_]*$`,
				`11: rule "Not-Valid": effect must be allow or deny, got "permit"`,
			},
		},
		{
			name: "reason not a string",
			src:  pkgSrc(goodFront, "- reason: 12\n  effect: deny\n  when: \"true\"\n", ""),
			want: []string{`10: rule 1: reason must be a string, got the integer 12`},
		},
		{
			name: "reason policy_error",
			src:  pkgSrc(goodFront, "- reason: policy_error\n  effect: deny\n  when: \"true\"\n", ""),
			want: []string{`10: rule "policy_error": reason "policy_error" is reserved for evaluation errors`},
		},
		{
			name: "reason used with two effects",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: actor == null\n- reason: a\n  effect: allow\n  when: \"true\"\n- reason: no_rule_matched\n  effect: allow\n  when: \"true\"\n", ""),
			want: []string{
				`14: rule "a": reason "a" is used with effect deny by the rule at line 10: a reason keeps one effect`,
				`16: rule "no_rule_matched": unreachable: rule "a" at line 13 always matches`,
				`17: rule "no_rule_matched": reason "no_rule_matched" is used with effect deny by the default: a reason keeps one effect`,
			},
		},
		{
			name: "when is not a string",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: [actor]\n", ""),
			want: []string{`12: rule "a": when must be a CEL expression string, got a list`},
		},
		{
			name: "CEL syntax error",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: actor ==\n", ""),
			want: []string{`12: rule "a": when: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER} (column 9)`},
		},
		{
			name: "CEL undeclared variable",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: principal == 'root'\n", ""),
			want: []string{`12: rule "a": when: undeclared reference to 'principal' (column 1)`},
		},
		{
			name: "CEL not a bool",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: size(subject)\n", ""),
			want: []string{`12: rule "a": when: must be a bool expression, got int`},
		},
		{
			name: "CEL dyn is not a bool",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: context.flag\n", ""),
			want: []string{"12: rule \"a\": when: must be a bool expression, got dyn (compare it, for example `... == true`)"},
		},
		{
			name: "misspelt actor member",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: context.ttl_hours > actor.max_ttl\n", ""),
			want: []string{`12: rule "a": when: actor has no member "max_ttl" (did you mean "max_ttl_hours"?); members: name, type, principal, default_ttl_hours, max_ttl_hours, subjects`},
		},
		{
			name: "misspelt actor member in an index",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: actor['subject'] == []\n", ""),
			want: []string{`12: rule "a": when: actor has no member "subject" (did you mean "subjects"?); members: name, type, principal, default_ttl_hours, max_ttl_hours, subjects`},
		},
		{
			name: "multi-line CEL error",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: |\n    actor != null\n    && nope\n", ""),
			want: []string{`12: rule "a": when: undeclared reference to 'nope' (expression line 2, column 4)`},
		},
		{
			name: "unreachable rule",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: allow\n  when: \"true\"\n- reason: b\n  effect: deny\n  when: actor == null\n", ""),
			want: []string{`13: rule "b": unreachable: rule "a" at line 10 always matches`},
		},
		{
			name: "rules YAML syntax error",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n   when: \"true\"\n", ""),
			want: []string{`12: rules block: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "rules with an alias",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: &w actor == null\n- reason: b\n  effect: deny\n  when: *w\n", ""),
			want: []string{`12: rules block: YAML anchors and aliases are not supported`},
		},
		{
			name: "two YAML documents in the rules block",
			src:  pkgSrc(goodFront, goodRules+"---\n- reason: b\n", ""),
			want: []string{`13: rules block: more than one YAML document`},
		},
		{
			name: "all errors of all rules are reported",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: maybe\n  when: \"true\"\n- reason: b\n  effect: deny\n  when: nope\n", ""),
			want: []string{
				`11: rule "a": effect must be allow or deny, got "maybe"`,
				`13: rule "b": unreachable: rule "a" at line 10 always matches`,
				`15: rule "b": when: undeclared reference to 'nope' (column 1)`,
			},
		},
		{
			name: "tests block is not a list",
			src:  pkgSrc(goodFront, goodRules, "name: x\n"),
			want: []string{`16: tests block must be a YAML list of tests, got a mapping`},
		},
		{
			name: "test with unknown keys and missing fields",
			src:  pkgSrc(goodFront, goodRules, "- name: t\n  request: {subjet: a, resource: adm-example}\n  expected: {effect: allow, reason: known}\n"),
			want: []string{
				`16: test "t": missing key "expect"`,
				`17: test "t": request: unknown key "subjet" (did you mean "subject"?)`,
				`17: test "t": request: missing key "subject"`,
				`18: test "t": unknown key "expected" (did you mean "expect"?)`,
			},
		},
		{
			name: "test expects an unknown reason",
			src:  pkgSrc(goodFront, goodRules, "- name: t\n  request: {subject: a, resource: b}\n  expect: {effect: deny, reason: nown}\n"),
			want: []string{`18: test "t": expect: no rule or default of this package has the reason "nown"`},
		},
		{
			name: "test expects the wrong effect for a reason",
			src:  pkgSrc(goodFront, goodRules, "- name: t\n  request: {subject: a, resource: b}\n  expect: {effect: deny, reason: known}\n"),
			want: []string{`18: test "t": expect: reason "known" comes with effect allow, not deny`},
		},
		{
			name: "duplicate test names across blocks",
			src:  pkgSrc(goodFront, goodRules, goodTest) + "\n```tests\n" + goodTest + "```\n",
			want: []string{`22: test "t": duplicate test name (the first is at line 16)`},
		},
		{
			name: "test request values",
			src: pkgSrc(goodFront, goodRules, "- name: t\n  request:\n    subject: \"\"\n    resource: 7\n    action: ssh.sign\n"+
				"    context: {1: a, big: !!int 99999999999999999999, float: 99999999999999999999, nan: .nan, bin: !!binary aGk=, l: [x, {y: 1, y: 2}]}\n"+
				"  expect: {effect: allow, reason: known}\n"),
			want: []string{
				`18: test "t": request: subject must not be empty`,
				`19: test "t": request: resource must be a string, got the integer 7`,
				`21: test "t": request: context: keys must be strings, got the integer 1 (quote the key)`,
				`21: test "t": request: context.big: integer 99999999999999999999 does not fit in 64 bits`,
				`21: test "t": request: context.nan: .nan is not a JSON number`,
				`21: test "t": request: context.bin: unsupported value a !!binary value`,
				`21: test "t": request: context.l[1]: duplicate key "y"`,
			},
		},
		{
			name: "test context is not a mapping",
			src:  pkgSrc(goodFront, goodRules, "- name: t\n  request: {subject: a, resource: b, context: [1]}\n  expect: {effect: allow, reason: known}\n"),
			want: []string{`17: test "t": request: context must be a mapping, got a list`},
		},
		{
			name: "test without a name",
			src:  pkgSrc(goodFront, goodRules, "- name: \"\"\n  request: {subject: a, resource: b}\n  expect: {effect: allow, reason: known}\n"),
			want: []string{`16: test 1: name must not be empty`},
		},
		{
			name: "rules fence inside details without a blank line",
			src:  "---\n" + goodFront + "---\n<details>\n<summary>Rules</summary>\n```rules\n" + goodRules + "```\n</details>\n",
			want: []string{
				`6: no fenced code block with the info string "rules": a package has exactly one`,
				`8: a "rules" fence inside the HTML block that starts at line 6 (<details>) is raw text to Markdown, not a code block, and flex-auth does not read it: leave a blank line between the HTML and the fence (for <details>, after </summary>)`,
			},
		},
		{
			name: "hidden rules in details beside visible ones",
			src:  pkgSrc(goodFront, goodRules, "") + "\n<details><summary>More</summary>\n~~~ Rules\n- reason: x\n  effect: allow\n  when: \"true\"\n~~~\n</details>\n",
			want: []string{
				`16: a "rules" fence inside the HTML block that starts at line 15 (<details><summary>More</summary>) is raw text to Markdown, not a code block, and flex-auth does not read it: leave a blank line between the HTML and the fence (for <details>, after </summary>)`,
			},
		},
		{
			name: "tests fence inside a div",
			src:  pkgSrc(goodFront, goodRules, "") + "\n<div>\n```tests\n" + goodTest + "```\n</div>\n",
			want: []string{
				`16: a "tests" fence inside the HTML block that starts at line 15 (<div>) is raw text to Markdown, not a code block, and flex-auth does not read it: leave a blank line between the HTML and the fence (for <details>, after </summary>)`,
			},
		},
		{
			name: "a long HTML tag is cut at a character",
			src:  pkgSrc(goodFront, goodRules, "") + "\n<div  class=\"" + strings.Repeat("é", 30) + "\">\n```tests\n" + goodTest + "```\n</div>\n",
			want: []string{
				`16: a "tests" fence inside the HTML block that starts at line 15 (<div  class="` + strings.Repeat("é", 13) + `...) is raw text to Markdown, not a code block, and flex-auth does not read it: leave a blank line between the HTML and the fence (for <details>, after </summary>)`,
			},
		},
		{
			name: "capitalized info string",
			src:  "---\n" + goodFront + "---\n```Rules\n" + goodRules + "```\n",
			want: []string{
				`6: fenced block with the info string "Rules": the first word of a rules block's info string must be exactly "rules" (attributes go after a space, as in "rules {.yaml}"); as written, flex-auth does not read this block`,
				`6: no fenced code block with the info string "rules": a package has exactly one`,
			},
		},
		{
			name: "attributes without a space",
			src:  pkgSrc(goodFront, goodRules, "") + "\n```rules{.cel}\n- reason: x\n  effect: allow\n  when: \"true\"\n```\n",
			want: []string{
				`15: fenced block with the info string "rules{.cel}": the first word of a rules block's info string must be exactly "rules" (attributes go after a space, as in "rules {.yaml}"); as written, flex-auth does not read this block`,
			},
		},
		{
			name: "language as a class attribute",
			src:  pkgSrc(goodFront, goodRules, "") + "\n``` {.tests}\n" + goodTest + "```\n",
			want: []string{
				`15: fenced block with the info string "{.tests}": the first word of a tests block's info string must be exactly "tests" (attributes go after a space, as in "tests {.yaml}"); as written, flex-auth does not read this block`,
			},
		},
		{
			name: "default allow and no rules",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: allow, reason: open}\n", "[]\n", ""),
			want: []string{`4: front matter: default: the default allows and no rule denies, so the package allows every request: if that is meant, say so with allow_all: true`},
		},
		{
			name: "default allow and allow rules only",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: allow, reason: open}\n", goodRules, ""),
			want: []string{`4: front matter: default: the default allows and no rule denies, so the package allows every request: if that is meant, say so with allow_all: true`},
		},
		{
			name: "a rule that always allows first",
			src:  pkgSrc(goodFront, "- reason: open\n  effect: allow\n  when: \"true\"\n", ""),
			want: []string{`10: rule "open": allows every request (its when is always true) before any rule denies: if that is meant, say so in the front matter with allow_all: true`},
		},
		{
			name: "allow_all on a package that denies",
			src:  pkgSrc(goodFront+"allow_all: true\n", goodRules, ""),
			want: []string{`5: front matter: allow_all: true, but the package can deny (its default, line 4): remove allow_all`},
		},
		{
			name: "allow_all not a bool",
			src:  pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: allow, reason: open}\nallow_all: \"yes\"\n", "[]\n", ""),
			want: []string{`5: front matter: allow_all must be true or false, got "yes"`},
		},
		{
			name: "map literal with a computed key",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: \"size({context.k: 1}) == 1\"\n", ""),
			want: []string{`12: rule "a": when: the keys of a map literal must be literals`},
		},
		{
			name: "regular expression program too large",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: \"subject.matches('(ab|cd){1000}')\"\n", ""),
			want: []string{`12: rule "a": when: regex program size 7002 exceeds limit of 5000 (column 17)`},
		},
		{
			name: "time zone by name",
			src:  pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: timestamp(context.t).getHours('Europe/Berlin') > 17\n- reason: b\n  effect: deny\n  when: timestamp(context.t).getDayOfWeek(context.tz) == 0\n", ""),
			want: []string{
				`12: rule "a": when: getHours: the time zone must be a literal UTC offset such as '+01:00' or '-05:30': a zone name is read from the time zone database on every call`,
				`15: rule "b": when: getDayOfWeek: the time zone must be a literal UTC offset such as '+01:00' or '-05:30': a zone name is read from the time zone database on every call`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("f.md", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse: got package %q, want errors:\n%s", p.Name(), strings.Join(tt.want, "\n"))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse: got %T %v, want Errors", err, err)
			}
			var got []string
			for _, e := range errs {
				if e.File != "f.md" {
					t.Errorf("File: got %q, want f.md", e.File)
				}
				got = append(got, strings.TrimPrefix(e.Error(), "f.md:"))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseTooManyErrors(t *testing.T) {
	rules := strings.Repeat("- reason: Bad\n  effect: deny\n  when: \"true\"\n", 150)
	_, err := Parse("f.md", []byte(pkgSrc(goodFront, rules, "")))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	if len(errs) != maxErrors+1 || errs[maxErrors].Msg != "too many errors" {
		t.Errorf("got %d errors ending %q, want %d and \"too many errors\"", len(errs), errs[len(errs)-1].Msg, maxErrors+1)
	}
}

func TestParseExample(t *testing.T) {
	src, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(examplePolicy, src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	sum := sha256.Sum256(src)
	checks := []struct {
		what      string
		got, want any
	}{
		{"Name", p.Name(), "ops-warden/ssh-signing"},
		{"File", p.File(), examplePolicy},
		{"Digest", p.Digest(), "sha256:" + hex.EncodeToString(sum[:])},
		{"Default", p.Default(), Decision{Deny, "no_rule_matched"}},
		{"NumRules", p.NumRules(), 6},
		{"NumTests", p.NumTests(), 44},
		{"Model", p.Model(), ModelRegistry},
		{"Data", p.Data(), DataRef{Kind: DataRegistry, File: "production_registry_snapshot.json"}},
		{"ResourceTypes", strings.Join(p.ResourceTypes(), " "), ActorType},
		{"Reasons", strings.Join(p.Reasons(), " "), "action_not_supported no_rule_matched policy_error principal_not_allowed signing_policy_matched subject_not_bound ttl_out_of_bounds unknown_actor_resource"},
		{"chain compiled", p.chain != nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	var reasons []string
	for _, r := range p.rules {
		reasons = append(reasons, r.decision.Reason)
	}
	want := "unknown_actor_resource action_not_supported subject_not_bound principal_not_allowed ttl_out_of_bounds signing_policy_matched"
	if got := strings.Join(reasons, " "); got != want {
		t.Errorf("rule order: got %s, want %s", got, want)
	}
}

// TestParseLines checks the Markdown line of rules and tests wherever the
// blocks sit: after CRLF lines, inside a list item, in a block quote, in a
// tilde fence.
func TestParseLines(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		ruleLines []int
		testLines []int
	}{
		{
			name:      "plain",
			src:       pkgSrc(goodFront, goodRules+"- reason: other\n  effect: deny\n  when: \"true\"\n", goodTest),
			ruleLines: []int{10, 13},
			testLines: []int{19},
		},
		{
			name:      "CRLF",
			src:       strings.ReplaceAll(pkgSrc(goodFront, goodRules, goodTest), "\n", "\r\n"),
			ruleLines: []int{10},
			testLines: []int{16},
		},
		{
			name: "list item and block quote",
			src: "---\n" + goodFront + "---\n" +
				"1. The rules:\n\n   ```rules\n   - reason: known\n     effect: allow\n     when: actor != null\n   ```\n" +
				"\n> ```tests\n> " + strings.ReplaceAll(strings.TrimSuffix(goodTest, "\n"), "\n", "\n> ") + "\n> ```\n",
			ruleLines: []int{9},
			testLines: []int{15},
		},
		{
			name:      "tilde fence and extra info words",
			src:       "---\n" + goodFront + "---\n~~~rules  yaml\n" + goodRules + "~~~\n````tests\n" + goodTest + "````\n",
			ruleLines: []int{7},
			testLines: []int{12},
		},
		{
			name:      "other fences are prose",
			src:       "---\n" + goodFront + "---\n```yaml\n- reason: x\n```\n```rules\n" + goodRules + "```\n    ```tests\n    indented code, not a fence\n",
			ruleLines: []int{10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("f.md", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var ruleLines, testLines []int
			for _, r := range p.rules {
				ruleLines = append(ruleLines, r.line)
			}
			for _, tc := range p.tests {
				testLines = append(testLines, tc.line)
			}
			if !slices.Equal(ruleLines, tt.ruleLines) {
				t.Errorf("rule lines: got %v, want %v", ruleLines, tt.ruleLines)
			}
			if !slices.Equal(testLines, tt.testLines) {
				t.Errorf("test lines: got %v, want %v", testLines, tt.testLines)
			}
		})
	}
}

// TestParseTestValues checks that a tests block's YAML values become the Go
// values the same JSON would decode to on the HTTP path.
func TestParseTestValues(t *testing.T) {
	tests := `- name: values
  request:
    subject: iam:adm-example
    resource: adm-example
    context:
      int: 24
      negative: -3
      hex: 0x10
      float: 1.5
      whole_float: 24.0
      exp: 1e3
      string: "24"
      plain: hello world
      date: 2026-06-23
      bool: true
      "null": null
      tilde: ~
      list: [1, a, {k: v}]
      map: {nested: {deep: 1}}
  expect: {effect: allow, reason: known}
- name: no context
  request: {subject: a, action: ssh.exec, resource: b}
  expect: {effect: allow, reason: known}
`
	p, err := Parse("f.md", []byte(pkgSrc(goodFront, goodRules, tests)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := map[string]any{
		"int": int64(24), "negative": int64(-3), "hex": int64(16),
		"float": 1.5, "whole_float": 24.0, "exp": 1000.0,
		"string": "24", "plain": "hello world", "date": "2026-06-23",
		"bool": true, "null": nil, "tilde": nil,
		"list": []any{int64(1), "a", map[string]any{"k": "v"}},
		"map":  map[string]any{"nested": map[string]any{"deep": int64(1)}},
	}
	got := p.tests[0].req
	if got.Subject != "iam:adm-example" || got.Resource != "adm-example" || got.Action != "" {
		t.Errorf("request: got %+v, want subject iam:adm-example, resource adm-example, no action", got)
	}
	if diff := cmp.Diff(want, got.Context); diff != "" {
		t.Errorf("context (-want +got):\n%s", diff)
	}
	if got := p.tests[1].req; got.Context != nil || got.Action != "ssh.exec" {
		t.Errorf("second request: got %+v, want action ssh.exec and a nil context", got)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, src string
	}{
		{"empty rule list", pkgSrc(goodFront, "[]\n", "")},
		{"byte order mark", "\uFEFF" + pkgSrc(goodFront, goodRules, goodTest)},
		{"unquoted true", pkgSrc(goodFront+"allow_all: true\n", "- reason: a\n  effect: allow\n  when: true\n", "")},
		{"empty tests block", pkgSrc(goodFront, goodRules, "\n")},
		{"comprehension over actor subjects", pkgSrc(goodFront, "- reason: a\n  effect: allow\n  when: actor.subjects.exists(s, s.startsWith('iam:'))\n", "")},
		{"a local variable named actor", pkgSrc(goodFront, "- reason: a\n  effect: allow\n  when: \"[{'x': 1}].exists(actor, actor.x == 1)\"\n", "")},
		{"a reason used twice with one effect", pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: actor == null\n- reason: a\n  effect: deny\n  when: action == ''\n", "")},
		{"a comment at the end of when", pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: \"actor == null // unknown\"\n- reason: b\n  effect: allow\n  when: \"true\"\n", "")},
		{"rules inside details after a blank line", "---\n" + goodFront + "---\n<details>\n<summary>Rules</summary>\n\n```rules\n" + goodRules + "```\n\n</details>\n"},
		{"attributes after the language", "---\n" + goodFront + "---\n```rules {.yaml}\n" + goodRules + "```\n```tests title=\"Tests\"\n" + goodTest + "```\n"},
		{"a fence in an HTML comment", pkgSrc(goodFront, goodRules, "") + "<!--\n```rules\n- reason: old\n```\n-->\n"},
		{"a fence in an example", pkgSrc(goodFront, goodRules, "") + "````markdown\n```rules\n[]\n```\n````\n\n    ```tests\n    []\n    ```\n"},
		{"a package that means to allow everything", pkgSrc("package: test/pkg\nversion: 1\ndefault: {effect: allow, reason: open}\nallow_all: true\n", "[]\n", "")},
		{"allow_all false on a package that denies", pkgSrc(goodFront+"allow_all: false\n", goodRules, "")},
		{"a literal UTC offset", pkgSrc(goodFront, "- reason: a\n  effect: deny\n  when: \"timestamp(context.t).getHours('+01:00') > 17 || size({'k': 1}) == 0\"\n", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("f.md", []byte(tt.src)); err != nil {
				t.Errorf("Parse: got %v, want no error", err)
			}
		})
	}
}

// TestParseErrorsRedacted checks the redacted form of each kind of
// problem that quotes the file: the file, the line and the rule broken,
// without the value, the key, the rule's or test's name, the CEL
// expression or YAML's words, which the full message has.
func TestParseErrorsRedacted(t *testing.T) {
	const secret = "s3cr3t"
	tests := []struct {
		name string
		src  string
		want []string // every redacted line, without the "f.md:" prefix
	}{
		{"front matter key", pkgSrc(goodFront+"s3cr3t_key: 1\n", goodRules, ""), []string{`5: front matter: unknown key <redacted>`}},
		{"version", pkgSrc("package: test/pkg\nversion: s3cr3t\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			[]string{`3: front matter: version must be an integer, got a string`}},
		{"unsupported version", pkgSrc("package: test/pkg\nversion: 31337\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			[]string{`3: front matter: unsupported version <redacted>: 1 is the only version understood`}},
		{"package", pkgSrc("package: S3CR3T\nversion: 1\ndefault: {effect: deny, reason: no_rule_matched}\n", goodRules, ""),
			[]string{`2: front matter: package: invalid name <redacted>: want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most 128 bytes`}},
		{"effect", pkgSrc(goodFront, "- reason: known\n  effect: s3cr3t\n  when: \"true\"\n", ""), []string{`11: effect must be allow or deny, got <redacted>`}},
		{"reason", pkgSrc(goodFront, "- reason: S3CR3T\n  effect: deny\n  when: \"true\"\n", ""), []string{`10: invalid reason <redacted>: want ^[a-z][a-z0-9_]*$`}},
		{"undeclared name", pkgSrc(goodFront, "- reason: s3cr3t_rule\n  effect: deny\n  when: s3cr3t_var\n", ""), []string{`12: when: not valid CEL (column 1)`}},
		{"CEL syntax", pkgSrc(goodFront, "- reason: known\n  effect: deny\n  when: \"1 s3cr3t\"\n", ""), []string{`12: when: not valid CEL (column 3)`}},
		{"actor member", pkgSrc(goodFront, "- reason: known\n  effect: deny\n  when: actor.s3cr3t == 1\n", ""),
			[]string{`12: when: actor has no member <redacted>; members: name, type, principal, default_ttl_hours, max_ttl_hours, subjects`}},
		{"a number for when", pkgSrc(goodFront, "- reason: known\n  effect: deny\n  when: 31337\n", ""), []string{`12: when must be a CEL expression string, got an integer`}},
		{"YAML alias", pkgSrc(goodFront, "- reason: known\n  effect: deny\n  when: *s3cr3t\n", ""), []string{`10: rules block: invalid YAML: <redacted>`}},
		{"rule key", pkgSrc(goodFront, "- reason: known\n  effect: deny\n  when: \"true\"\n  s3cr3t: 1\n", ""), []string{`13: unknown key <redacted>`}},
		{"info string", pkgSrc(goodFront, goodRules, "") + "\n```rules{s3cr3t}\n[]\n```\n", []string{`15: fenced block with the info string <redacted>: the first word of a rules block's info string must be exactly "rules" (attributes go after a space, as in "rules {.yaml}"); as written, flex-auth does not read this block`}},
		{"HTML block", pkgSrc(goodFront, goodRules, "") + "\n<details s3cr3t>\n```rules\n[]\n```\n</details>\n", []string{`16: a "rules" fence inside the HTML block that starts at line 15 (<redacted>) is raw text to Markdown, not a code block, and flex-auth does not read it: leave a blank line between the HTML and the fence (for <details>, after </summary>)`}},
		{"a test's reason", pkgSrc(goodFront, goodRules, "- name: s3cr3t test\n  request: {subject: a, resource: b}\n  expect: {effect: deny, reason: s3cr3t}\n"),
			[]string{`18: expect: no rule or default of this package has the reason <redacted>`}},
		{"a context key", pkgSrc(goodFront, goodRules, "- name: t\n  request: {subject: a, resource: b, context: {s3cr3t: {k: .nan}}}\n  expect: {effect: allow, reason: known}\n"),
			[]string{`17: request: context.<redacted>.<redacted>: <redacted> is not a JSON number`}},
		{"a context value", pkgSrc(goodFront, goodRules, "- name: t\n  request: {subject: a, resource: b, context: {a: [!s3cr3t 1]}}\n  expect: {effect: allow, reason: known}\n"),
			[]string{`17: request: context.<redacted>[0]: unsupported value a value with a tag`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.md", []byte(tt.src))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse: got %v, want Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, strings.TrimPrefix(e.Redacted(), "f.md:"))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("redacted:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if full := err.Error(); !strings.Contains(strings.ToLower(full), secret) && !strings.Contains(full, "31337") {
				t.Errorf("the full message %q does not quote the file: the case tests nothing", full)
			}
			if r := errs.Redacted(); strings.Contains(strings.ToLower(r), secret) || strings.Contains(r, "31337") {
				t.Errorf("redacted form quotes the file: %q", r)
			}
		})
	}
}
