package inventory

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// base is a valid inventory; tests append actors and keys to it.
const base = `version: 1
defaults:
  adm: {ttl_hours: 48}
  agt: {ttl_hours: 24}
  atm: {ttl_hours: 8}
actors:
  adm-example:
    principal: adm-full
`

// TestParseErrors has a case for every rule of CONTRACT section 1, each
// with the exact lines Parse must report.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		// Document.
		{"empty file", ``, []string{
			`inventory.yaml:1:1: empty inventory; want a mapping with version and actors`}},
		{"only comments", "# nothing\n", []string{
			`inventory.yaml:1:1: empty inventory; want a mapping with version and actors`}},
		{"top is a sequence", "- a\n- b\n", []string{
			`inventory.yaml:1:1: want a mapping with version and actors at the top of the inventory, got a sequence`}},
		{"top is a scalar", "hello\n", []string{
			`inventory.yaml:1:1: want a mapping with version and actors at the top of the inventory, got string "hello"`}},
		{"two documents", base + "---\nversion: 1\n", []string{
			`inventory.yaml:9:1: a second YAML document; an inventory is a single document`}},
		{"syntax error", "version: 1\nactors:\n  adm-a: {ttl_hours: 1\n", []string{
			`inventory.yaml:3:1: invalid YAML: did not find expected ',' or '}'`}},
		{"syntax error on line 1", "version: [1\n", []string{
			`inventory.yaml:2:1: invalid YAML: did not find expected ',' or ']'`}},
		{"tab indentation", "version: 1\nactors:\n\tadm-a: {}\n", []string{
			`inventory.yaml:3:1: invalid YAML: found character that cannot start any token`}},
		{"invalid UTF-8", "version: 1\nactors:\n  adm-a: {description: \"caf\xe9\"}\n", []string{
			`inventory.yaml:3:28: invalid UTF-8 (byte 0xe9); an inventory is UTF-8 text`}},
		{"unknown anchor", "version: 1\nactors:\n  adm-a: {ttl_hours: 1}\n  adm-b: *nope\n", []string{
			`inventory.yaml:4:10: invalid YAML: unknown anchor 'nope' referenced`}},
		{"control character", "version: 1\nactors:\n  adm-a: {description: \"a\x01\"}\n", []string{
			`inventory.yaml:3:26: control character U+0001 is not allowed in YAML`}},
		// YAML 1.2 has no escape \'; yaml.v3 reads it as '.
		{"escaped single quote", base + "  agt-x: {description: \"it\\'s\"}\n", []string{
			`inventory.yaml:9:27: invalid YAML: "\'" is not an escape in YAML 1.2; write ' alone`}},
		{"escaped single quote after properties and a line break", base + "  agt-x:\n    description: !!str &d # why\n      \"it is\n      ok, it\\'s \\\\'\"\n", []string{
			`inventory.yaml:12:13: invalid YAML: "\'" is not an escape in YAML 1.2; write ' alone`}},
		{"escaped single quote in a key", base + "x-notes: {\"\\'\": 1}\n", []string{
			`inventory.yaml:9:12: invalid YAML: "\'" is not an escape in YAML 1.2; write ' alone`}},
		{"escaped single quote after a byte order mark", "\uFEFFx-a: \"\\'\"\n" + base, []string{
			`inventory.yaml:1:7: invalid YAML: "\'" is not an escape in YAML 1.2; write ' alone`}},
		// Valid YAML 1.2 that yaml.v3 refuses: the error says so.
		{"escaped slash", base + "  agt-x: {subjects: [\"iam:role\\/x\"]}\n", []string{
			`inventory.yaml:9:31: invalid YAML: found unknown escape character "\/": valid in YAML 1.2 and JSON, but not to the YAML parser flex-auth uses (gopkg.in/yaml.v3); write "/" alone`}},
		{"escaped slash after an escaped backslash", base + "  agt-x: {description: \"a\\\\b\\/c\"}\n", []string{
			`inventory.yaml:9:29: invalid YAML: found unknown escape character "\/": valid in YAML 1.2 and JSON, but not to the YAML parser flex-auth uses (gopkg.in/yaml.v3); write "/" alone`}},
		{"unknown escape, and a slash after it", base + "  agt-x: {description: \"\\q\"}\n  agt-y: {description: a\\/b}\n", []string{
			`inventory.yaml:9:1: invalid YAML: found unknown escape character`}},
		{"question mark in a flow value", base + "  agt-x: {description: why? because}\n", []string{
			`inventory.yaml:9:1: invalid YAML: did not find expected ',' or '}' (a "?" in an unquoted value inside {...} or [...] is valid YAML 1.2, but the YAML parser flex-auth uses (gopkg.in/yaml.v3) takes it for a key: quote the value)`}},
		{"YAML 1.3", "%YAML 1.3\n---\n" + base, []string{
			`inventory.yaml:1:1: invalid YAML: found incompatible YAML document`}},

		// version.
		{"missing version", "actors:\n  adm-a: {ttl_hours: 1}\n", []string{
			`inventory.yaml:1:1: missing version (want "version: 1")`}},
		{"unsupported version", strings.Replace(base, "version: 1", "version: 2", 1), []string{
			`inventory.yaml:1:10: unsupported version 2; this flex-auth understands version 1`}},
		{"version is a string", strings.Replace(base, "version: 1", `version: "1"`, 1), []string{
			`inventory.yaml:1:10: version: want the integer 1, got string "1"`}},
		{"version is a float", strings.Replace(base, "version: 1", `version: 1.0`, 1), []string{
			`inventory.yaml:1:10: version: want the integer 1, got float 1.0`}},
		{"version in binary", strings.Replace(base, "version: 1", `version: 0b1`, 1), []string{
			`inventory.yaml:1:10: version: want the integer 1, got string "0b1" (an integer in YAML 1.1, not in YAML 1.2)`}},

		// Top-level keys.
		{"unknown top key with hint", base + "actor: {}\n", []string{
			`inventory.yaml:9:1: unknown key "actor" (did you mean "actors"?)`}},
		{"unknown top key without hint", base + "owner: ops\n", []string{
			`inventory.yaml:9:1: unknown key "owner" (want one of version, defaults, actors)`}},
		{"actor at the top level", base + "agt-lost: {}\n", []string{
			`inventory.yaml:9:1: unknown key "agt-lost" (actors go under "actors")`}},
		{"duplicate top key", base + "version: 1\n", []string{
			`inventory.yaml:9:1: duplicate key "version" (first at line 1)`}},
		{"missing actors", "version: 1\n", []string{
			`inventory.yaml:1:1: missing actors (want a mapping of actor names to their settings)`}},
		{"actors is a sequence", "version: 1\nactors:\n  - adm-a\n", []string{
			`inventory.yaml:3:3: actors: want a mapping of actor names to their settings, got a sequence`}},
		{"actors is null", "version: 1\nactors:\n", []string{
			`inventory.yaml:2:1: no enabled actor in actors; a registry needs at least one`}},
		{"actors is empty", "version: 1\nactors: {}\n", []string{
			`inventory.yaml:2:1: no enabled actor in actors; a registry needs at least one`}},
		{"all actors disabled", "version: 1\nactors:\n  adm-a: {ttl_hours: 1, disabled: true}\n", []string{
			`inventory.yaml:2:1: no enabled actor in actors; a registry needs at least one`}},
		{"non-string key", "version: 1\n[a]: 1\nactors: {adm-a: {ttl_hours: 1}}\n", []string{
			`inventory.yaml:2:1: want a string key, got a sequence`}},
		{"merge key", "version: 1\nx-common: &c {ttl_hours: 1}\nactors:\n  adm-a:\n    <<: *c\n", []string{
			`inventory.yaml:4:3: actor "adm-a": no ttl_hours; set it here or in defaults.adm`,
			`inventory.yaml:5:5: actor "adm-a": merge keys (<<) are not supported (they are not YAML 1.2); write the settings out, or use defaults`}},

		// defaults.
		{"defaults for an unknown type", base + "defaults2: {}\n", []string{
			`inventory.yaml:9:1: unknown key "defaults2" (did you mean "defaults"?)`}},
		{"defaults key not a type", strings.Replace(base, "  atm: {ttl_hours: 8}", "  bot: {ttl_hours: 8}", 1), []string{
			`inventory.yaml:5:3: defaults: unknown key "bot" (only adm, agt and atm may have defaults)`}},
		{"defaults unknown setting", strings.Replace(base, "{ttl_hours: 48}", "{ttl_hours: 48, max_ttl: 50}", 1), []string{
			`inventory.yaml:3:24: defaults.adm: unknown key "max_ttl" (did you mean "max_ttl_hours"?)`}},
		{"defaults is a list", "version: 1\ndefaults: [adm]\nactors: {adm-a: {ttl_hours: 1}}\n", []string{
			`inventory.yaml:2:11: defaults: want a mapping of actor types (adm, agt, atm) to settings, got a sequence`}},
		{"defaults type is a scalar", "version: 1\ndefaults: {adm: 48}\nactors: {adm-a: {ttl_hours: 1}}\n", []string{
			`inventory.yaml:2:17: defaults: adm: want a mapping of settings, got integer 48`}},
		{"defaults bad principal", "version: 1\ndefaults: {adm: {principal: Root, ttl_hours: 1}}\nactors: {adm-a: {}, adm-b: {}}\n", []string{
			`inventory.yaml:2:29: defaults.adm: invalid principal "Root": want ^[a-z_][a-z0-9_-]{0,31}$`}},
		{"defaults ttl above max", "version: 1\ndefaults: {adm: {ttl_hours: 10, max_ttl_hours: 5}}\nactors: {adm-a: {}, adm-b: {}}\n", []string{
			`inventory.yaml:2:29: defaults.adm: ttl_hours 10 is above max_ttl_hours 5`}},
		{"defaults ttl out of range", "version: 1\ndefaults: {adm: {ttl_hours: 9000}}\nactors: {adm-a: {}, adm-b: {}}\n", []string{
			`inventory.yaml:2:29: defaults.adm: ttl_hours: must be between 1 and 8760, got 9000`}},
		{"duplicate defaults type", "version: 1\ndefaults:\n  adm: {ttl_hours: 1}\n  adm: {ttl_hours: 2}\nactors: {adm-a: {}}\n", []string{
			`inventory.yaml:4:3: defaults: duplicate key "adm" (first at line 3)`}},

		// Actor names and type.
		{"invalid actor name", base + "  bot-x: {}\n", []string{
			`inventory.yaml:9:3: invalid actor name "bot-x": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`}},
		{"actor name with capitals", base + "  agt-Bridge: {}\n", []string{
			`inventory.yaml:9:3: invalid actor name "agt-Bridge": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`}},
		{"actor name too long", base + "  agt-" + strings.Repeat("a", 60) + ": {principal: agt-long}\n", []string{
			`inventory.yaml:9:3: actor name "agt-` + strings.Repeat("a", 60) + `" is 64 bytes long, at most 63 allowed`}},
		{"duplicate actor", base + "  adm-example: {}\n", []string{
			`inventory.yaml:9:3: actors: duplicate actor "adm-example" (first at line 7)`}},
		{"type mismatch", base + "  agt-x: {type: atm}\n", []string{
			`inventory.yaml:9:17: actor "agt-x": type: want "agt", the prefix of the actor name, got "atm"`}},
		{"type not a string", base + "  agt-x: {type: 1}\n", []string{
			`inventory.yaml:9:17: actor "agt-x": type: want a string, got integer 1`}},
		{"settings not a mapping", base + "  agt-x: yes\n", []string{
			`inventory.yaml:9:10: actor "agt-x": want a mapping of settings, got string "yes"`}},

		// Unknown, duplicate and secret keys.
		{"unknown actor key with hint", base + "  agt-x:\n    ttl_hour: 3\n", []string{
			`inventory.yaml:10:5: actor "agt-x": unknown key "ttl_hour" (did you mean "ttl_hours"?)`}},
		{"unknown actor key, dashes", base + "  agt-x:\n    max-ttl-hours: 30\n", []string{
			`inventory.yaml:10:5: actor "agt-x": unknown key "max-ttl-hours" (did you mean "max_ttl_hours"?)`}},
		{"unknown actor key without hint", base + "  agt-x:\n    owner: me\n", []string{
			`inventory.yaml:10:5: actor "agt-x": unknown key "owner" (want one of type, principal, ttl_hours, max_ttl_hours, subjects, description, disabled)`}},
		{"duplicate actor key", base + "  agt-x:\n    ttl_hours: 1\n    ttl_hours: 2\n", []string{
			`inventory.yaml:11:5: actor "agt-x": duplicate key "ttl_hours" (first at line 10)`}},
		{"duplicate x- key", base + "  agt-x:\n    x-a: 1\n    x-a: 2\n", []string{
			`inventory.yaml:11:5: actor "agt-x": duplicate key "x-a" (first at line 10)`}},
		{"duplicate key inside an x- value", base + "x-notes:\n  a: 1\n  a: 2\n", []string{
			`inventory.yaml:11:3: duplicate key "a" (first at line 10)`}},
		// Keys are compared as YAML values, and a duplicate written as an
		// alias is reported where the alias is.
		{"duplicate boolean key", base + "x-notes: {true: 1, True: 2}\n", []string{
			`inventory.yaml:9:20: duplicate key "True" (boolean true, first at line 9)`}},
		{"duplicate null key", base + "x-notes: {~: 1, null: 2}\n", []string{
			`inventory.yaml:9:17: duplicate key "null" (null, first at line 9)`}},
		{"duplicate float key", base + "x-notes: {.inf: 1, +.INF: 2, 1.0: 3, 1e0: 4}\n", []string{
			`inventory.yaml:9:20: duplicate key "+.INF" (float +.inf, first at line 9)`,
			`inventory.yaml:9:38: duplicate key "1e0" (float 1, first at line 9)`}},
		{"duplicate quoted key", base + "x-notes: {a: 1, 'a': 2, \"\\x61\": 3}\n", []string{
			`inventory.yaml:9:17: duplicate key "a" (first at line 9)`,
			`inventory.yaml:9:25: duplicate key "a" (first at line 9)`}},
		{"duplicate integer key at the top", "version: 1\n0x1: a\n1: b\nactors: {adm-a: {ttl_hours: 1}}\n", []string{
			`inventory.yaml:2:1: unknown key "0x1" (want one of version, defaults, actors)`,
			`inventory.yaml:3:1: duplicate key "1" (integer 1, first at line 2)`}},
		{"duplicate collection key", base + "x-notes:\n  ? [a, {b: c, d: e}]\n  : 1\n  ? [a, {d: e, b: c}]\n  : 2\n", []string{
			`inventory.yaml:12:5: duplicate key, a sequence equal to the key at line 10`}},
		{"duplicate key written as an alias", base + "  agt-x: {&k x-a: 1, *k : 2}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": duplicate key "x-a" (first at line 9)`}},
		{"duplicate known key written as an alias", "version: 1\nx-k: &k ttl_hours\nactors:\n  agt-x:\n    ttl_hours: 1\n    *k : 2\n", []string{
			`inventory.yaml:6:5: actor "agt-x": duplicate key "ttl_hours" (first at line 5)`}},
		{"alias first, duplicate after", "version: 1\nx-k: &k ttl_hours\nactors:\n  agt-x:\n    *k : 1\n    ttl_hours: 2\n", []string{
			`inventory.yaml:6:5: actor "agt-x": duplicate key "ttl_hours" (first at line 5)`}},
		{"duplicate key in an x- value written as an alias", base + "x-notes: {&k a: 1, *k : 2}\n", []string{
			`inventory.yaml:9:20: duplicate key "a" (first at line 9)`}},
		{"duplicate actor name as a value", base + "  true: {}\n  True: {}\n", []string{
			`inventory.yaml:9:3: invalid actor name "true": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`,
			`inventory.yaml:10:3: invalid actor name "True": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`,
			`inventory.yaml:10:3: actors: duplicate actor "True" (boolean true, first at line 9)`}},
		{"actor names of different values", base + "  1: {}\n  \"1\": {}\n", []string{
			`inventory.yaml:9:3: invalid actor name "1": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`,
			`inventory.yaml:10:3: invalid actor name "1": want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9`}},
		{"duplicate actor written as an alias", "version: 1\ndefaults: {agt: {ttl_hours: 1}}\nx-n: &n agt-a\nactors:\n  agt-a: {}\n  *n : {}\n", []string{
			`inventory.yaml:6:3: actors: duplicate actor "agt-a" (first at line 5)`}},
		{"private key", base + "  agt-x:\n    private_key: abc\n", []string{
			`inventory.yaml:10:5: actor "agt-x": key "private_key" looks like key material; credentials never belong in the inventory (flex-auth never receives SSH private keys or Vault tokens): remove it, and rotate the credential if it was real`}},
		{"vault token at the top", base + "vault_token: abc\n", []string{
			`inventory.yaml:9:1: key "vault_token" looks like key material; credentials never belong in the inventory (flex-auth never receives SSH private keys or Vault tokens): remove it, and rotate the credential if it was real`}},
		{"secret x- key", base + "x-vault-token: abc\n", []string{
			`inventory.yaml:9:1: key "x-vault-token" looks like key material; credentials never belong in the inventory (flex-auth never receives SSH private keys or Vault tokens): remove it, and rotate the credential if it was real`}},
		{"secret inside an x- value", base + "x-notes:\n  ops:\n    password: hunter2\n", []string{
			`inventory.yaml:11:5: key "password" looks like key material; credentials never belong in the inventory (flex-auth never receives SSH private keys or Vault tokens): remove it, and rotate the credential if it was real`}},
		{"secret as actor name", base + "  client_secret: {}\n", []string{
			`inventory.yaml:9:3: key "client_secret" looks like key material; credentials never belong in the inventory (flex-auth never receives SSH private keys or Vault tokens): remove it, and rotate the credential if it was real`}},

		// principal.
		{"invalid principal", base + "  agt-x: {principal: Agent}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": invalid principal "Agent": want ^[a-z_][a-z0-9_-]{0,31}$`}},
		{"principal too long", base + "  agt-x: {principal: " + strings.Repeat("a", 33) + "}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": invalid principal "` + strings.Repeat("a", 33) + `": want ^[a-z_][a-z0-9_-]{0,31}$`}},
		{"principal not a string", base + "  agt-x: {principal: null}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": principal: want a string, got null`}},
		{"name too long to be the principal", base + "  agt-" + strings.Repeat("b", 30) + ": {}\n", []string{
			`inventory.yaml:9:3: actor "agt-` + strings.Repeat("b", 30) + `": no principal is set, and the actor name is too long to be one (34 bytes, at most 32); set principal here or in defaults.agt`}},

		// ttl_hours and max_ttl_hours.
		{"no ttl anywhere", "version: 1\nactors:\n  agt-x: {}\n", []string{
			`inventory.yaml:3:3: actor "agt-x": no ttl_hours; set it here or in defaults.agt`}},
		{"ttl is a string", base + "  agt-x: {ttl_hours: \"24\"}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: want an integer from 1 to 8760, got string "24"`}},
		{"ttl is a float", base + "  agt-x: {ttl_hours: 2.5}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: want an integer from 1 to 8760, got float 2.5`}},
		{"ttl is a bool", base + "  agt-x: {ttl_hours: true}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: want an integer from 1 to 8760, got boolean true`}},
		{"ttl is tagged str", base + "  agt-x: {ttl_hours: !!str 24}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: want an integer from 1 to 8760, got string "24"`}},
		{"ttl zero", base + "  agt-x: {ttl_hours: 0}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: must be between 1 and 8760, got 0`}},
		{"ttl negative", base + "  agt-x: {ttl_hours: -3}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: must be between 1 and 8760, got -3`}},
		{"ttl too large", base + "  agt-x: {ttl_hours: 8761}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: must be between 1 and 8760, got 8761`}},
		{"ttl huge", base + "  agt-x: {ttl_hours: 99999999999999999999}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: must be between 1 and 8760, got 99999999999999999999`}},
		{"ttl with digit groups", base + "  agt-x: {ttl_hours: 1_2}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: want an integer from 1 to 8760, got string "1_2" (an integer in YAML 1.1, not in YAML 1.2)`}},
		{"ttl in binary", base + "  agt-x: {max_ttl_hours: 0b11000}\n", []string{
			`inventory.yaml:9:26: actor "agt-x": max_ttl_hours: want an integer from 1 to 8760, got string "0b11000" (an integer in YAML 1.1, not in YAML 1.2)`}},
		{"ttl leading zero", base + "  agt-x: {ttl_hours: 024}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours: 024 has a leading zero, which YAML 1.1 reads as octal and YAML 1.2 as decimal; write it without`}},
		{"max ttl is a string", base + "  agt-x: {max_ttl_hours: \"48\"}\n", []string{
			`inventory.yaml:9:26: actor "agt-x": max_ttl_hours: want an integer from 1 to 8760, got string "48"`}},
		{"max ttl too large", base + "  agt-x: {max_ttl_hours: 10000}\n", []string{
			`inventory.yaml:9:26: actor "agt-x": max_ttl_hours: must be between 1 and 8760, got 10000`}},
		{"ttl above own max", base + "  agt-x: {ttl_hours: 30, max_ttl_hours: 20}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": ttl_hours 30 is above max_ttl_hours 20`}},
		{"ttl above default max", "version: 1\ndefaults: {agt: {max_ttl_hours: 10}}\nactors: {agt-x: {ttl_hours: 12}}\n", []string{
			`inventory.yaml:3:29: actor "agt-x": ttl_hours 12 is above max_ttl_hours 10 (from defaults.agt)`}},
		{"max below default ttl", base + "  agt-x: {max_ttl_hours: 12}\n", []string{
			`inventory.yaml:9:26: actor "agt-x": max_ttl_hours 12 is below ttl_hours 24 (from defaults.agt)`}},

		// subjects.
		{"subjects not a list", base + "  agt-x: {subjects: iam:role/x}\n", []string{
			`inventory.yaml:9:21: actor "agt-x": subjects: want a sequence of subjects, got string "iam:role/x"`}},
		{"subject not a string", base + "  agt-x: {subjects: [1234]}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": subjects: want a string, got integer 1234`}},
		{"subject a float to YAML 1.2", base + "  agt-x: {subjects: [1e400]}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": subjects: want a string, got float 1e400`}},
		{"invalid subject", base + "  agt-x: {subjects: [\"a b\"]}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": invalid subject "a b": want 1 to 256 bytes of [A-Za-z0-9._:/@+=-]`}},
		{"empty subject", base + "  agt-x: {subjects: [\"\"]}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": invalid subject "": want 1 to 256 bytes of [A-Za-z0-9._:/@+=-]`}},
		{"subject claims another actor", base + "  agt-x: {subjects: [adm-example]}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": subject "adm-example" is actor "adm-example"'s identity; binding it here would let "agt-x" sign as "adm-example"`}},
		{"subject claims another's iam", base + "  agt-x: {subjects: [iam:adm-example]}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": subject "iam:adm-example" is actor "adm-example"'s identity; binding it here would let "agt-x" sign as "adm-example"`}},
		{"subject claims a later actor", "version: 1\ndefaults: {agt: {ttl_hours: 1}}\nactors:\n  agt-a: {subjects: [iam:agt-b]}\n  agt-b: {}\n", []string{
			`inventory.yaml:4:22: actor "agt-a": subject "iam:agt-b" is actor "agt-b"'s identity; binding it here would let "agt-a" sign as "agt-b"`}},
		{"subject claims a disabled actor", base + "  agt-x: {subjects: [agt-old]}\n  agt-old: {disabled: true}\n", []string{
			`inventory.yaml:9:22: actor "agt-x": subject "agt-old" is actor "agt-old"'s identity; binding it here would let "agt-x" sign as "agt-old" (a disabled actor keeps its identities reserved)`}},
		{"disabled actor claims another", base + "  agt-old: {disabled: true, subjects: [adm-example]}\n", []string{
			`inventory.yaml:9:40: actor "agt-old": subject "adm-example" is actor "adm-example"'s identity; binding it here would let "agt-old" sign as "adm-example"`}},

		// Other settings.
		{"disabled not a bool", base + "  agt-x: {disabled: \"yes\"}\n", []string{
			`inventory.yaml:9:21: actor "agt-x": disabled: want true or false, got string "yes"`}},
		{"description not text", base + "  agt-x: {description: [a]}\n", []string{
			`inventory.yaml:9:24: actor "agt-x": description: want text, got a sequence`}},
		{"disabled actor is still checked", base + "  agt-x: {disabled: true, ttl_hours: 0}\n", []string{
			`inventory.yaml:9:38: actor "agt-x": ttl_hours: must be between 1 and 8760, got 0`}},

		// Several problems: all reported, in file order.
		{"all errors sorted", base + "  agt-x:\n    ttl_hours: 0\n    bogus: 1\nversion: 2\n", []string{
			`inventory.yaml:10:16: actor "agt-x": ttl_hours: must be between 1 and 8760, got 0`,
			`inventory.yaml:11:5: actor "agt-x": unknown key "bogus" (want one of type, principal, ttl_hours, max_ttl_hours, subjects, description, disabled)`,
			`inventory.yaml:12:1: duplicate key "version" (first at line 1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse("inventory.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("got inventory %+v, want errors:\n%s", inv, strings.Join(tt.want, "\n"))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got error %T %v, want inventory.Errors", err, err)
			}
			if got := strings.Split(err.Error(), "\n"); !cmp.Equal(got, tt.want) {
				t.Errorf("got errors (-got +want):\n%s", cmp.Diff(got, tt.want))
			}
		})
	}
}

// TestAliasBomb checks that aliases cannot make a small inventory expand
// into an enormous one: 1,200 actors sharing a 1,000-subject list would be
// 1.2 million subjects from 30 KB of YAML.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\ndefaults: {agt: {ttl_hours: 1}}\nx-many: &many [" + strings.Repeat("s,", 999) + "s]\nactors:\n")
	for i := range 1200 {
		fmt.Fprintf(&b, "  agt-%d: {subjects: *many}\n", i)
	}
	data := []byte(b.String())
	_, err := Parse("inventory.yaml", data)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want inventory.Errors", err)
	}
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1:\n%v", len(errs), err)
	}
	want := fmt.Sprintf("aliases expand this inventory to more than %d nodes; refusing to go on (an alias bomb?)", 1<<20+2*len(data))
	if errs[0].Msg != want {
		t.Errorf("got %v, want %q", errs[0], want)
	}
}

// TestAliases checks that aliases are resolved where an inventory may use
// them, and that errors point at where the alias is used.
func TestAliases(t *testing.T) {
	data := "version: 1\nx-shared: &shared [iam:role/ops]\nx-ttl: &ttl 12\ndefaults: {agt: {ttl_hours: *ttl}}\nactors:\n  agt-a: {subjects: *shared}\n  agt-b: &b {subjects: [*shared]}\n  agt-c: *b\n"
	_, err := Parse("inventory.yaml", []byte(data))
	want := `inventory.yaml:7:25: actor "agt-b": subjects: want a string, got a sequence`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
	data = strings.Replace(data, "[*shared]", "[iam:role/dev]", 1)
	inv, err := Parse("inventory.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, a := range inv.Actors {
		got[a.Name] = a.Subjects
		if a.TTLHours != 12 {
			t.Errorf("%s: got ttl_hours %d, want 12 (through an alias)", a.Name, a.TTLHours)
		}
	}
	wantSubjects := map[string][]string{
		"agt-a": {"agt-a", "iam:agt-a", "iam:role/ops"},
		"agt-b": {"agt-b", "iam:agt-b", "iam:role/dev"},
		"agt-c": {"agt-c", "iam:agt-c", "iam:role/dev"},
	}
	if !cmp.Equal(got, wantSubjects) {
		t.Errorf("got subjects %v, want %v", got, wantSubjects)
	}
}

// TestKeysOfDifferentValues checks that keys that differ as YAML values
// are not duplicates, however alike their text: an integer and a string,
// an integer and a float, null and "null", two different sequences.
func TestKeysOfDifferentValues(t *testing.T) {
	data := base + "x-notes: {1: a, \"1\": b, 1.0: c, null: d, \"null\": e, true: f, \"true\": g, !!str 2: h, 2: i, [a]: j, [b]: k, 0o10: l, \"0o10\": m}\n"
	if _, err := Parse("inventory.yaml", []byte(data)); err != nil {
		t.Errorf("got %v, want no error", err)
	}
}

// shiftLines moves every position inv records by d lines.
func shiftLines(inv *Inventory, d int) {
	inv.ActorsLine += d
	for _, actors := range [][]Actor{inv.Actors, inv.Disabled} {
		for i := range actors {
			a := &actors[i]
			a.Line += d
			for _, l := range []*int{&a.KeyLines.Type, &a.KeyLines.Principal, &a.KeyLines.TTLHours, &a.KeyLines.MaxTTLHours, &a.KeyLines.Subjects} {
				if *l > 0 {
					*l += d
				}
			}
		}
	}
}

// TestYAML12 checks what flex-auth accepts of YAML 1.2 where yaml.v3 on
// its own departs from it: a %YAML 1.2 directive reads like %YAML 1.1
// (yaml.v3 reads both by the same rules), and "\'" is refused only where
// it is an escape.
func TestYAML12(t *testing.T) {
	want, err := Parse("inventory.yaml", []byte("%YAML 1.1\n---\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	for _, head := range []string{"%YAML 1.2\n---\n", "# ops\n%YAML\t1.2 # the version\r\n---\n", "\uFEFF%YAML 1.2\n--- # one\n"} {
		got, err := Parse("inventory.yaml", []byte(head+base))
		if err != nil {
			t.Errorf("%q: got %v, want no error", head, err)
			continue
		}
		if head[0] == '#' {
			shiftLines(got, -1)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q: inventory (-1.1 +1.2):\n%s", head, diff)
		}
	}
	for _, head := range []string{"%YAML 1.20\n---\n", "%YAML  \n---\n", "---\n%YAML 1.2\n---\n"} {
		if _, err := Parse("inventory.yaml", []byte(head+base)); err == nil {
			t.Errorf("%q: got no error, want one", head)
		}
	}
	// Values are read as YAML 1.2 reads them, not as yaml.v3 tags them: a
	// date is a string, 0x18, 0o30 and +24 are integers.
	data := "version: 0x1\nactors:\n  agt-x: {ttl_hours: 0x18, max_ttl_hours: 0o30, subjects: [2001-12-14]}\n  agt-y: {ttl_hours: +24, disabled: False}\n"
	inv, err := Parse("inventory.yaml", []byte(data))
	if err != nil {
		t.Fatalf("got %v, want no error for\n%s", err, data)
	}
	x := inv.Actors[0]
	if x.TTLHours != 24 || x.MaxTTLHours != 24 || !slices.Contains(x.Subjects, "2001-12-14") || inv.Actors[1].TTLHours != 24 {
		t.Errorf("got %+v, want TTLs of 24 and the subject 2001-12-14", inv.Actors)
	}

	// \' where it is not an escape: plain and single-quoted scalars,
	// comments, block scalars, an escaped backslash.
	data = base + "  agt-x: # it\\'s\n    description: it\\'s\n  agt-y: {description: 'it\\''s'}\n  agt-z:\n    description: |\n      it\\'s\n  agt-w: {description: \"\\\\'\"}\n"
	inv, err = Parse("inventory.yaml", []byte(data))
	if err != nil {
		t.Fatalf("got %v, want no error for\n%s", err, data)
	}
	if len(inv.Actors) != 5 {
		t.Errorf("got %d actors, want 5", len(inv.Actors))
	}
}
