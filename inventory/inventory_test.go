package inventory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseResolves(t *testing.T) {
	const data = `# comment
version: 1
x-owner: ops-warden            # x- keys are ignored at every level
defaults:
  adm: {principal: adm-full, ttl_hours: 8, max_ttl_hours: 12, x-note: n}
  agt: {ttl_hours: 24}
  atm: {ttl_hours: 4}
  x-future: {anything: [1, 2]}
actors:
  x-group: {note: not an actor}
  atm-backup-daily:             # null settings: everything from defaults or the name
  adm-alice: {}                 # principal and both TTLs from defaults
  adm-bob: {principal: adm-bob, ttl_hours: 2}   # own principal; max from defaults
  agt-state-hub-bridge:
    type: agt
    principal: agt-task-bridge
    ttl_hours: 24
    max_ttl_hours: 48
    subjects: [iam:role/state-hub, agt-state-hub-bridge, iam:role/state-hub, "svc@example.org"]
    description: Bridge agent.
    x-ticket: OPS-1
  agt-retired: {disabled: true, subjects: [iam:role/old]}
  agt-short: {ttl_hours: 2, disabled: false}   # max falls back to its own ttl
  atm-backup-daily2: {ttl_hours: 0x8}
`
	inv, err := Parse("inventory.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := &Inventory{
		File:       "inventory.yaml",
		ActorsLine: 9,
		Actors: []Actor{
			{Name: "adm-alice", Type: "adm", Principal: "adm-full", TTLHours: 8, MaxTTLHours: 12,
				Subjects: []string{"adm-alice", "iam:adm-alice"}, Line: 12, Col: 3},
			{Name: "adm-bob", Type: "adm", Principal: "adm-bob", TTLHours: 2, MaxTTLHours: 12,
				Subjects: []string{"adm-bob", "iam:adm-bob"}, Line: 13, Col: 3,
				KeyLines: KeyLines{Principal: 13, TTLHours: 13}},
			{Name: "agt-short", Type: "agt", Principal: "agt-short", TTLHours: 2, MaxTTLHours: 2,
				Subjects: []string{"agt-short", "iam:agt-short"}, Line: 23, Col: 3,
				KeyLines: KeyLines{TTLHours: 23}},
			{Name: "agt-state-hub-bridge", Type: "agt", Principal: "agt-task-bridge", TTLHours: 24, MaxTTLHours: 48,
				Subjects: []string{"agt-state-hub-bridge", "iam:agt-state-hub-bridge", "iam:role/state-hub", "svc@example.org"}, Line: 14, Col: 3,
				KeyLines: KeyLines{Type: 15, Principal: 16, TTLHours: 17, MaxTTLHours: 18, Subjects: 19}},
			{Name: "atm-backup-daily", Type: "atm", Principal: "atm-backup-daily", TTLHours: 4, MaxTTLHours: 4,
				Subjects: []string{"atm-backup-daily", "iam:atm-backup-daily"}, Line: 11, Col: 3},
			{Name: "atm-backup-daily2", Type: "atm", Principal: "atm-backup-daily2", TTLHours: 8, MaxTTLHours: 8,
				Subjects: []string{"atm-backup-daily2", "iam:atm-backup-daily2"}, Line: 24, Col: 3,
				KeyLines: KeyLines{TTLHours: 24}},
		},
		Disabled: []Actor{
			{Name: "agt-retired", Type: "agt", Principal: "agt-retired", TTLHours: 24, MaxTTLHours: 24,
				Subjects: []string{"agt-retired", "iam:agt-retired", "iam:role/old"}, Line: 22, Col: 3,
				KeyLines: KeyLines{Subjects: 22}},
		},
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
}

func TestParseNullSettingsNeedTTL(t *testing.T) {
	_, err := Parse("inventory.yaml", []byte("version: 1\nactors:\n  atm-backup-daily:\n"))
	want := `inventory.yaml:3:3: actor "atm-backup-daily": no ttl_hours; set it here or in defaults.atm`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestExample parses the ops-warden example inventory.
func TestExample(t *testing.T) {
	path := filepath.Join("..", "examples", "ops-warden", "inventory.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range inv.Actors {
		got = append(got, a.Name)
	}
	want := []string{"adm-example", "agt-codex-interhub-bootstrap", "agt-state-hub-bridge", "atm-backup-daily"}
	if !cmp.Equal(got, want) {
		t.Errorf("got actors %v, want %v", got, want)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "inventory.yaml", Line: 14, Col: 5, Msg: `actor "agt-x": unknown key "ttl_hour" (did you mean "ttl_hours"?)`}
	want := `inventory.yaml:14:5: actor "agt-x": unknown key "ttl_hour" (did you mean "ttl_hours"?)`
	if got := e.Error(); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	es := Errors{e, {File: "f", Line: 1, Col: 2, Msg: "m"}}
	if got, want := es.Error(), want+"\nf:1:2: m"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := len(es.Unwrap()); got != 2 {
		t.Errorf("got %d unwrapped errors, want 2", got)
	}
}
