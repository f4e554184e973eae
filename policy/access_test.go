package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/coulomb/flex-auth/entities"
	"github.com/coulomb/flex-auth/registry"
)

const (
	certDir = "../examples/authzen-certification"
	todoDir = "../examples/authzen-todo"
)

// azPackage reads subject, resource and action properties, so that a test
// sees what a rule sees.
const azPackage = "---\npackage: test/az\nversion: 1\ndefault: {effect: deny, reason: no}\ndata: {entities: e.yaml}\n---\n```rules\n" +
	"- reason: level_from_request\n  effect: allow\n  when: has(subject.properties.level) && subject.properties.level == 'request'\n" +
	"- reason: level_from_data\n  effect: allow\n  when: has(subject.properties.level) && subject.properties.level == 'data'\n" +
	"- reason: both\n  effect: allow\n  when: has(subject.properties.x) && has(subject.properties.y)\n" +
	"- reason: action_props\n  effect: allow\n  when: has(action.properties.soft) && action.properties.soft\n" +
	"- reason: data_lookup\n  effect: allow\n  when: resource.type in data && resource.id in data[resource.type] && data[resource.type][resource.id].open == true\n" +
	"```\n"

const azData = `schema: flex-auth.entities/v1
policy_package: test/az
actions: [b, a]
entities:
  user:
    ann: {level: data, x: 1}
    bea: {}
  door:
    front: {open: true}
`

func azEvaluator(t *testing.T, pkgSrc, dataSrc string) *Evaluator {
	t.Helper()
	p, err := Parse("p.md", []byte(pkgSrc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	d, err := entities.Parse("e.yaml", []byte(dataSrc))
	if err != nil {
		t.Fatalf("entities.Parse: %v", err)
	}
	e, err := NewEntitiesEvaluator(p, d)
	if err != nil {
		t.Fatalf("NewEntitiesEvaluator: %v", err)
	}
	return e
}

// TestAccessProperties checks what a rule sees of an entity: the data's
// properties, with the request's laid over them key by key.
func TestAccessProperties(t *testing.T) {
	e := azEvaluator(t, azPackage, azData)
	user := func(id string, props map[string]any) Entity { return Entity{Type: "user", ID: id, Properties: props} }
	door := Entity{Type: "door", ID: "back"}
	tests := []struct {
		name string
		a    Access
		want string
	}{
		{"the data's properties", Access{Subject: user("ann", nil), Resource: door}, "level_from_data"},
		{"the request's win", Access{Subject: user("ann", map[string]any{"level": "request"}), Resource: door}, "level_from_request"},
		{"both are seen", Access{Subject: user("ann", map[string]any{"y": true, "level": "none"}), Resource: door}, "both"},
		{"an entity without data properties", Access{Subject: user("bea", map[string]any{"level": "request"}), Resource: door}, "level_from_request"},
		{"an entity the data does not have", Access{Subject: user("cid", map[string]any{"x": 1, "y": 2}), Resource: door}, "both"},
		{"another type's entity is another entity", Access{Subject: Entity{Type: "door", ID: "ann"}, Resource: door}, "no"},
		{"action properties", Access{Subject: user("cid", nil), Action: Action{Name: "a", Properties: map[string]any{"soft": true}}, Resource: door}, "action_props"},
		{"data by type and id", Access{Subject: user("cid", nil), Resource: Entity{Type: "door", ID: "front"}}, "data_lookup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Access(&tt.a)
			if err != nil || d.Reason != tt.want {
				t.Errorf("got %v (err %v), want reason %s", d, err, tt.want)
			}
		})
	}
	// The request's properties are not changed by the overlay.
	props := map[string]any{"y": true, "level": "none"}
	e.Access(&Access{Subject: user("ann", props)})
	if !cmp.Equal(props, map[string]any{"y": true, "level": "none"}) {
		t.Errorf("the request's properties changed: %v", props)
	}
}

// TestAccessErrors: a rule that fails denies with policy_error, naming the
// rule; a nil request and a /v1/check request to an AuthZEN package are
// refused.
func TestAccessErrors(t *testing.T) {
	src := strings.Replace(azPackage, "has(subject.properties.level) && subject.properties.level == 'request'", "subject.properties.level == 'request'", 1)
	e := azEvaluator(t, src, azData)
	d, err := e.Access(&Access{Subject: Entity{Type: "user", ID: "bea"}})
	var ee *EvalError
	if d != (Decision{Deny, ReasonPolicyError}) || !errors.As(err, &ee) || ee.Rule != "level_from_request" {
		t.Errorf("got %v, %v; want policy_error naming level_from_request", d, err)
	}
	if d, err := e.Access(nil); d.Reason != ReasonPolicyError || err == nil {
		t.Errorf("nil: got %v, %v", d, err)
	}
	if d, err := e.Evaluate(&Request{Subject: "a", Resource: "b"}); d.Reason != ReasonPolicyError || !errors.Is(err, errNotRegistry) {
		t.Errorf("Evaluate: got %v, %v; want policy_error", d, err)
	}
}

// TestAccessRegistryModel checks that a registry model package decides an
// AuthZEN request exactly as the same request on /v1/check, and that a
// resource of another type than actor names no actor.
func TestAccessRegistryModel(t *testing.T) {
	e := exampleEvaluator(t)
	n := 0
	for _, a := range e.snap.Actors {
		for _, sub := range append(slices.Clone(a.Subjects), "iam:nobody", "adm-example") {
			for _, ctx := range []map[string]any{nil, {"ttl_hours": int64(1)}, {"ttl_hours": int64(a.MaxTTLHours + 1)},
				{"principal": a.Principal, "ttl_hours": int64(a.DefaultTTLHours)}, {"principal": "root", "ttl_hours": int64(1)}} {
				for _, action := range []string{"ssh.sign", "ssh.exec"} {
					acc := &Access{Subject: Entity{Type: "iam", ID: sub, Properties: map[string]any{"x": 1}}, Action: Action{Name: action},
						Resource: Entity{Type: ActorType, ID: a.Name}, Context: ctx}
					got, gotErr := e.Access(acc)
					want, wantErr := e.Evaluate(&Request{Subject: sub, Action: action, Resource: a.Name, Context: ctx})
					if got != want || (gotErr == nil) != (wantErr == nil) {
						t.Errorf("%+v: got %v (%v), want %v (%v) as on /v1/check", acc, got, gotErr, want, wantErr)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d requests agree", n)
	ok := &Access{Subject: Entity{Type: "iam", ID: "adm-example"}, Action: Action{Name: "ssh.sign"}, Resource: Entity{Type: ActorType, ID: "adm-example"}, Context: map[string]any{"ttl_hours": int64(1)}}
	if d, _ := e.Access(ok); d.Effect != Allow {
		t.Fatalf("got %v, want an allow", d)
	}
	other := *ok
	other.Resource.Type = "host"
	if d, _ := e.Access(&other); d.Reason != "unknown_actor_resource" {
		t.Errorf("resource of type host: got %v, want unknown_actor_resource", d)
	}
	req := other.Request()
	if _, err := e.Grant(&req); err == nil {
		t.Errorf("Grant for a resource of type host: got no error")
	}
	// The backstop knows the type too: an open package allows nothing
	// that is not an actor.
	open := bind(t, openPackage)
	if d, err := open.Access(&other); d.Reason != ReasonPolicyError || err == nil {
		t.Errorf("open package, resource of type host: got %v, %v; want policy_error", d, err)
	}
}

func TestCandidates(t *testing.T) {
	s := exampleSnapshot(t)
	actors := slices.Clone(s.Actors)
	// An extra subject bound to two actors.
	for i := range actors {
		if actors[i].Name == "agt-state-hub-bridge" || actors[i].Name == "adm-example" {
			actors[i].Subjects = append(slices.Clone(actors[i].Subjects), "iam:role/ops")
		}
	}
	reg, err := NewEvaluator(exampleEvaluator(t).pkg, registry.New(s.Source, s.PolicyPackage, actors))
	if err != nil {
		t.Fatal(err)
	}
	az := azEvaluator(t, azPackage, azData)
	actor := func(id string) Entity { return Entity{Type: ActorType, ID: id} }
	tests := []struct {
		name string
		e    *Evaluator
		k    Search
		q    Access
		want []string
	}{
		{"registry: the actor's subjects", reg, SearchSubject, Access{Resource: actor("agt-state-hub-bridge")},
			[]string{"agt-state-hub-bridge", "iam:agt-state-hub-bridge", "iam:role/ops"}},
		{"registry: an unknown actor has none", reg, SearchSubject, Access{Resource: actor("agt-nobody")}, nil},
		{"registry: a resource of another type has none", reg, SearchSubject, Access{Resource: Entity{Type: "host", ID: "adm-example"}}, nil},
		{"registry: the actors an extra subject is bound to", reg, SearchResource, Access{Subject: Entity{ID: "iam:role/ops"}, Resource: Entity{Type: ActorType}},
			[]string{"adm-example", "agt-state-hub-bridge"}},
		{"registry: the actor by name", reg, SearchResource, Access{Subject: Entity{ID: "atm-backup-daily"}, Resource: Entity{Type: ActorType}}, []string{"atm-backup-daily"}},
		{"registry: the actor by IAM subject", reg, SearchResource, Access{Subject: Entity{ID: "iam:atm-backup-daily"}, Resource: Entity{Type: ActorType}}, []string{"atm-backup-daily"}},
		{"registry: nobody's subject", reg, SearchResource, Access{Subject: Entity{ID: "iam:nobody"}, Resource: Entity{Type: ActorType}}, nil},
		{"registry: resources of another type", reg, SearchResource, Access{Subject: Entity{ID: "adm-example"}, Resource: Entity{Type: "host"}}, nil},
		{"registry: the one action", reg, SearchAction, Access{}, []string{"ssh.sign"}},
		{"entities: the subjects of a type", az, SearchSubject, Access{Subject: Entity{Type: "user"}}, []string{"ann", "bea"}},
		{"entities: the resources of a type", az, SearchResource, Access{Resource: Entity{Type: "door"}}, []string{"front"}},
		{"entities: an unknown type", az, SearchResource, Access{Resource: Entity{Type: "spaceship"}}, nil},
		{"entities: the actions, sorted", az, SearchAction, Access{}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Candidates(tt.k, &tt.q); !cmp.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewEntitiesEvaluatorRefuses(t *testing.T) {
	p, err := Parse("p.md", []byte(azPackage))
	if err != nil {
		t.Fatal(err)
	}
	other, err := entities.Parse("e.yaml", []byte(strings.Replace(azData, "test/az", "test/other", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEntitiesEvaluator(p, other); !errors.Is(err, ErrPackageMismatch) {
		t.Errorf("another package's data: got %v, want ErrPackageMismatch", err)
	}
	if _, err := NewEntitiesEvaluator(exampleEvaluator(t).pkg, other); err == nil || !strings.Contains(err.Error(), "decides over a registry") {
		t.Errorf("a registry package: got %v", err)
	}
	if _, err := NewEvaluator(p, exampleSnapshot(t)); err == nil || !strings.Contains(err.Error(), "not a registry") {
		t.Errorf("NewEvaluator with an AuthZEN package: got %v", err)
	}
	if _, err := NewEntitiesEvaluator(nil, other); err == nil {
		t.Error("nil package: got no error")
	}
}

// TestEntitiesCost: the cost limit is proven against the data bound, so a
// loop over the data is refused when the data is large, not when small.
func TestEntitiesCost(t *testing.T) {
	src := "---\npackage: test/az\nversion: 1\ndefault: {effect: deny, reason: no}\ndata: {entities: e.yaml}\n---\n```rules\n" +
		"- reason: crowded\n  effect: allow\n  when: data.user.all(u, data.user.all(v, u == v || data.user[u] != data.user[v]))\n```\n"
	p, err := Parse("p.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	small, _ := entities.Parse("e.yaml", []byte(azData))
	if _, err := NewEntitiesEvaluator(p, small); err != nil {
		t.Errorf("small data: %v", err)
	}
	var b strings.Builder
	b.WriteString("schema: flex-auth.entities/v1\npolicy_package: test/az\nentities:\n  user:\n")
	for i := range 2000 {
		b.WriteString("    u" + "-" + strconv.Itoa(i) + ": {n: 1}\n")
	}
	large, err := entities.Parse("e.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var pe *Error
	if _, err := NewEntitiesEvaluator(p, large); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "may cost") {
		t.Errorf("large data: got %v, want the cost limit", err)
	}
	// A type's name is a value of data as an id is: one long name makes
	// comparing names costly.
	src = strings.Replace(src, "data.user.all(u, data.user.all(v, u == v || data.user[u] != data.user[v]))", "data.all(s, data.all(t, s.contains(t)))", 1)
	if p, err = Parse("p.md", []byte(src)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEntitiesEvaluator(p, small); err != nil {
		t.Errorf("short type names: %v", err)
	}
	longType, err := entities.Parse("e.yaml", []byte(strings.Replace(azData, "  door:", "  "+strings.Repeat("d", 1000)+":", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEntitiesEvaluator(p, longType); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "may cost") {
		t.Errorf("a long type name: got %v, want the cost limit", err)
	}
}

func TestLoadDir(t *testing.T) {
	for _, dir := range []string{"../examples/ops-warden", certDir, todoDir} {
		e, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("LoadDir(%s): %v", dir, err)
		}
		for _, r := range e.RunTests() {
			if !r.Passed() {
				t.Errorf("%s: %s: got %v, want %v", dir, r.Name, r.Got, r.Want)
			}
		}
	}
	e, _ := LoadDir(certDir)
	if e.Entities() == nil || e.Registry() != nil || e.DataDigest() != e.Entities().Digest() {
		t.Errorf("cert: Entities %v, Registry %v, DataDigest %s", e.Entities(), e.Registry(), e.DataDigest())
	}
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	exampleSrc := string(example)
	write := func(dir, name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no package file", nil, "policy_package.md: no such file"},
		{"no data named", map[string]string{PackageFile: strings.Replace(exampleSrc, "data: {registry: production_registry_snapshot.json}\n", "", 1)}, "its front matter names no data"},
		{"no data file", map[string]string{PackageFile: azPackage}, "e.yaml: no such file"},
		{"bad data", map[string]string{PackageFile: azPackage, "e.yaml": "schema: x\n"}, `e.yaml:1:9: schema: want "flex-auth.entities/v1"`},
		{"data for another package", map[string]string{PackageFile: azPackage, "e.yaml": strings.Replace(azData, "test/az", "test/b", 1)},
			`DIR/policy_package.md and DIR/e.yaml: bind policy package "test/az": the entities document's policy_package is "test/b"`},
		{"bad registry", map[string]string{PackageFile: exampleSrc, "production_registry_snapshot.json": "{}"},
			"load registry: DIR/production_registry_snapshot.json: schema: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range tt.files {
				write(dir, name, src)
			}
			_, err := LoadDir(dir)
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want an error containing %q", err, want)
			}
		})
	}
}
