package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/registry"
)

const policyDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// fake is an httptest stand-in for flex-auth serve that decides with the
// ops-warden rules of CONTRACT section 3, so these tests need neither the
// policy nor the serve package. Its knobs break it in the ways a real
// deployment can be broken.
type fake struct {
	snap     *registry.Snapshot
	degraded bool
	// decide, when set, replaces the rules.
	decide func(req client.Request) (effect, reason string)
	// grantTTL, when set, is the TTL granted instead of the one asked for.
	grantTTL int
	// grantPrincipal, when set, is the principal granted instead of the
	// actor's.
	grantPrincipal string
	// decidedWith, when set, is the registry digest of every decision
	// instead of the one served.
	decidedWith string
	// healthz, when set, are the registry digests /healthz reports, one
	// per request, the last one again once they run out.
	healthz []string
	mu      sync.Mutex
	seq     atomic.Int64
}

func newFake(t *testing.T) *fake {
	t.Helper()
	data, err := os.ReadFile("../examples/ops-warden/production_registry_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return &fake{snap: s}
}

func (f *fake) rules(req client.Request) (effect, reason string) {
	a := f.snap.Lookup(req.Resource)
	ttl, isInt := req.Context["ttl_hours"].(float64)
	switch {
	case a == nil:
		return "deny", "unknown_actor_resource"
	case req.Action != "ssh.sign":
		return "deny", "action_not_supported"
	case !slices.Contains(a.Subjects, req.Subject):
		return "deny", "subject_not_bound"
	case req.Context["principal"] != nil && req.Context["principal"] != a.Principal:
		return "deny", "principal_not_allowed"
	case !isInt || ttl != float64(int(ttl)) || ttl < 1 || int(ttl) > a.MaxTTLHours:
		return "deny", "ttl_out_of_bounds"
	}
	return "allow", "signing_policy_matched"
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/healthz":
		status, lastErr := "ok", "null"
		if f.degraded {
			status, lastErr = "degraded", `"registry.json: digest: digest does not match the content"`
		}
		digest := f.snap.Digest
		f.mu.Lock()
		if len(f.healthz) > 0 {
			digest = f.healthz[0]
			if len(f.healthz) > 1 {
				f.healthz = f.healthz[1:]
			}
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"status": %q, "registry": {"digest": %q, "actors": %d, "loaded_at": "2026-06-24T10:00:00Z"}, "policy": {"package": "ops-warden/ssh-signing", "digest": %q}, "reload": {"last_error": %s, "last_attempt_at": null}}`,
			status, digest, len(f.snap.Actors), policyDigest, lastErr)
	case "/v1/registry":
		w.Write(f.snap.Canonical())
	case "/v1/check":
		var req client.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error": {"code": "invalid_request", "message": %q}}`, err.Error())
			return
		}
		decide := f.rules
		if f.decide != nil {
			decide = f.decide
		}
		effect, reason := decide(req)
		grant := ""
		if effect == "allow" {
			principal, ttl := "agt-task-bridge", 24
			if a := f.snap.Lookup(req.Resource); a != nil {
				principal, ttl = a.Principal, int(req.Context["ttl_hours"].(float64))
			}
			if f.grantTTL != 0 {
				ttl = f.grantTTL
			}
			if f.grantPrincipal != "" {
				principal = f.grantPrincipal
			}
			grant = fmt.Sprintf(`, "grant": {"principal": %q, "ttl_hours": %d}`, principal, ttl)
		}
		decidedWith := f.snap.Digest
		if f.decidedWith != "" {
			decidedWith = f.decidedWith
		}
		fmt.Fprintf(w, `{"decision_id": "decision:%016x", "effect": %q, "reason": %q, "policy": "ops-warden/ssh-signing", "policy_digest": %q, "registry_digest": %q%s}`,
			f.seq.Add(1), effect, reason, policyDigest, decidedWith, grant)
	default:
		http.NotFound(w, r)
	}
}

func start(t *testing.T, h http.Handler) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func intp(n int) *int { return &n }

func TestCheck(t *testing.T) {
	tests := []struct {
		name                     string
		q                        Query
		wantEffect, wantReason   string
		wantSubject, wantTTLFrom string
		wantContext              string
	}{
		{"defaults", Query{Actor: "agt-state-hub-bridge"}, "allow", "signing_policy_matched",
			"agt-state-hub-bridge", TTLRegistryDefault, `{"ttl_hours":24}`},
		{"iam subject and principal", Query{Actor: "agt-state-hub-bridge", Subject: "iam:agt-state-hub-bridge", Principal: "agt-task-bridge"},
			"allow", "signing_policy_matched", "iam:agt-state-hub-bridge", TTLRegistryDefault, `{"principal":"agt-task-bridge","ttl_hours":24}`},
		{"ttl 999", Query{Actor: "agt-state-hub-bridge", TTLHours: intp(999)}, "deny", "ttl_out_of_bounds",
			"agt-state-hub-bridge", TTLGiven, `{"ttl_hours":999}`},
		{"ttl 0 is sent, not defaulted", Query{Actor: "agt-state-hub-bridge", TTLHours: intp(0)}, "deny", "ttl_out_of_bounds",
			"agt-state-hub-bridge", TTLGiven, `{"ttl_hours":0}`},
		{"unknown actor sends no ttl", Query{Actor: "agt-nobody"}, "deny", "unknown_actor_resource",
			"agt-nobody", TTLNone, `{}`},
		{"foreign subject", Query{Actor: "agt-state-hub-bridge", Subject: "iam:adm-example"}, "deny", "subject_not_bound",
			"iam:adm-example", TTLRegistryDefault, `{"ttl_hours":24}`},
	}
	c := start(t, newFake(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Check(context.Background(), c, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if res.Decision.Effect != tt.wantEffect || res.Decision.Reason != tt.wantReason {
				t.Errorf("got %s %s, want %s %s", res.Decision.Effect, res.Decision.Reason, tt.wantEffect, tt.wantReason)
			}
			if res.Subject != tt.wantSubject || res.TTLSource != tt.wantTTLFrom || res.Action != "ssh.sign" {
				t.Errorf("got subject %q ttl source %q action %q, want %q %q ssh.sign", res.Subject, res.TTLSource, res.Action, tt.wantSubject, tt.wantTTLFrom)
			}
			if got, _ := json.Marshal(res.Context); string(got) != tt.wantContext {
				t.Errorf("got context %s, want %s", got, tt.wantContext)
			}
		})
	}
}

// TestCheckMismatch checks that Check refuses a well-formed decision that
// does not answer its question, and keeps it in the Result as evidence.
func TestCheckMismatch(t *testing.T) {
	const other = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	served := newFake(t).snap.Digest
	bridge := Query{Actor: "agt-state-hub-bridge", Principal: "agt-task-bridge"}
	withTTL := func(q Query, ttl int) Query { q.TTLHours = &ttl; return q }
	tests := []struct {
		name  string
		knobs func(f *fake)
		q     Query
		want  string // "" for no error
	}{
		{"a matching allow", func(*fake) {}, bridge, ""},
		{"a matching allow, TTL given", func(*fake) {}, withTTL(bridge, 12), ""},
		{"another TTL", func(f *fake) { f.grantTTL = 8760 }, bridge, "the grant is for 8760 hours, the request asked for 24"},
		{"another TTL than given", func(f *fake) { f.grantTTL = 24 }, withTTL(bridge, 1), "the grant is for 24 hours, the request asked for 1"},
		{"another principal", func(f *fake) { f.grantPrincipal = "root" }, bridge, "the grant is for principal root, the request asked for agt-task-bridge"},
		{"no principal asked", func(f *fake) { f.grantPrincipal = "root" }, Query{Actor: "agt-state-hub-bridge"}, ""},
		{"an actor the registry lacks", func(f *fake) {
			f.decide = func(client.Request) (string, string) { return "allow", "signing_policy_matched" }
		},
			Query{Actor: "agt-nobody"}, "an allow for agt-nobody, which the registry the service serves does not list"},
		{"another registry", func(f *fake) { f.decidedWith = other }, bridge,
			"the decision was made with registry " + other + ", but the service reports it serves " + served},
		{"another registry, TTL given", func(f *fake) { f.decidedWith = other }, withTTL(bridge, 24),
			"the decision was made with registry " + other + ", but the service reports it serves " + served},
		{"a deny from another registry", func(f *fake) { f.decidedWith = other }, withTTL(bridge, 999), "the decision was made with registry " + other},
		{"a reload before the decision", func(f *fake) { f.healthz = []string{other, served} }, withTTL(bridge, 24), ""},
		{"a reload after the decision", func(f *fake) { f.decidedWith, f.healthz = other, []string{other, served} }, withTTL(bridge, 24), ""},
		{"two reloads", func(f *fake) { f.decidedWith, f.healthz = other, []string{served, served} }, withTTL(bridge, 24), "the decision was made with registry " + other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			tt.knobs(f)
			res, err := Check(context.Background(), start(t, f), tt.q)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			var me *MismatchError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a *MismatchError saying %q", err, tt.want)
			}
			if res == nil || res.Decision == nil {
				t.Errorf("got no decision in the result, want the one refused")
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	c := start(t, newFake(t))
	res, err := Check(context.Background(), c, Query{Actor: "agt-state-hub-bridge", Subject: "iam:agt-state-hub-bridge"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"actor:           agt-state-hub-bridge\n",
		"subject:         iam:agt-state-hub-bridge\n",
		"ttl_hours:       24 (the actor's default_ttl_hours)\n",
		"decision_id:     decision:0000000000000001\n",
		"effect:          allow\n",
		"reason:          signing_policy_matched\n",
		"grant:           principal agt-task-bridge, ttl 24h\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("got\n%s\nwant a line %q", b.String(), want)
		}
	}
}

func TestRunPasses(t *testing.T) {
	for _, subject := range []string{"", "iam:agt-state-hub-bridge"} {
		t.Run("subject="+subject, func(t *testing.T) {
			c := start(t, newFake(t))
			r := Run(context.Background(), c, "agt-state-hub-bridge", subject)
			var b bytes.Buffer
			r.WriteText(&b)
			if !r.Pass {
				t.Fatalf("got a failed smoke, want a pass:\n%s", b.String())
			}
			var names []string
			for _, s := range r.Steps {
				names = append(names, s.Name)
			}
			if want := []string{StepHealthz, StepRegistry, StepAllow, StepDenyTTL, StepUnknownActor}; !slices.Equal(names, want) {
				t.Errorf("got steps %v, want %v", names, want)
			}
			if got := r.Steps[3].Request.Context["ttl_hours"]; got != 25 {
				t.Errorf("deny step asked for ttl %v, want max+1 = 25", got)
			}
			if got := r.Steps[4].Request.Resource; got != UnknownActor {
				t.Errorf("unknown step asked for %q, want %q", got, UnknownActor)
			}
			wantSubject := subject
			if wantSubject == "" {
				wantSubject = "agt-state-hub-bridge"
			}
			for _, want := range []string{
				"PASS allow         actor=agt-state-hub-bridge subject=" + wantSubject + " ttl_hours=24 decision=decision:0000000000000001 effect=allow reason=signing_policy_matched grant=agt-task-bridge/24h\n",
				"PASS deny_ttl      actor=agt-state-hub-bridge subject=" + wantSubject + " ttl_hours=25 decision=decision:0000000000000002 effect=deny reason=ttl_out_of_bounds\n",
				"PASS unknown_actor actor=agt-flex-auth-smoke-nonexistent",
				"smoke: all 5 steps passed\n",
			} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("got\n%s\nwant a line containing %q", b.String(), want)
				}
			}
		})
	}
}

func TestRunFails(t *testing.T) {
	tests := []struct {
		name      string
		breakIt   func(f *fake)
		actor     string
		failSteps []string
		problem   string
	}{
		{"degraded", func(f *fake) { f.degraded = true }, "agt-state-hub-bridge", []string{StepHealthz},
			"degraded: the last reload failed: registry.json: digest"},
		{"actor not in registry", nil, "agt-missing", []string{StepRegistry, StepAllow, StepDenyTTL},
			"agt-missing is not in the served registry"},
		{"everything allowed", func(f *fake) {
			f.decide = func(client.Request) (string, string) { return "allow", "signing_policy_matched" }
		}, "agt-state-hub-bridge", []string{StepDenyTTL, StepUnknownActor}, "got allow signing_policy_matched, want deny ttl_out_of_bounds"},
		{"wrong deny reason", func(f *fake) {
			f.decide = func(client.Request) (string, string) { return "deny", "no_rule_matched" }
		}, "agt-state-hub-bridge", []string{StepAllow, StepDenyTTL, StepUnknownActor}, "got deny no_rule_matched, want allow signing_policy_matched"},
		{"wrong grant", func(f *fake) { f.grantTTL = 48 }, "agt-state-hub-bridge", []string{StepAllow},
			"got a grant of agt-task-bridge for 48h, want agt-task-bridge for 24h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.breakIt != nil {
				tt.breakIt(f)
			}
			r := Run(context.Background(), start(t, f), tt.actor, "")
			var b bytes.Buffer
			r.WriteText(&b)
			if r.Pass {
				t.Fatalf("got a pass, want a failure:\n%s", b.String())
			}
			var failed []string
			for _, s := range r.Steps {
				if !s.Pass {
					failed = append(failed, s.Name)
				}
			}
			if !slices.Equal(failed, tt.failSteps) {
				t.Errorf("got failed steps %v, want %v\n%s", failed, tt.failSteps, b.String())
			}
			if !strings.Contains(b.String(), tt.problem) {
				t.Errorf("got\n%s\nwant it to contain %q", b.String(), tt.problem)
			}
			if !strings.Contains(b.String(), "smoke: FAILED") {
				t.Errorf("got\n%s\nwant a FAILED summary", b.String())
			}
		})
	}
}

func TestRunUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	r := Run(context.Background(), c, "agt-state-hub-bridge", "")
	if r.Pass {
		t.Fatal("got a pass against a closed port")
	}
	if len(r.Steps) != 5 || !strings.Contains(r.Steps[0].Problem, "unreachable") {
		t.Fatalf("got steps %+v, want 5 with an unreachable healthz", r.Steps)
	}
	for _, s := range r.Steps[1:] {
		if s.Pass || s.Problem != "not run: the service is unreachable" {
			t.Errorf("step %s: got pass %v problem %q, want not run", s.Name, s.Pass, s.Problem)
		}
	}
}

// The unknown-actor step never asks about an actor that exists.
func TestRunUnknownActorAvoidsRealActors(t *testing.T) {
	f := newFake(t)
	actors := append(slices.Clone(f.snap.Actors), registry.Actor{
		Name: UnknownActor, Type: "agt", Principal: "x", DefaultTTLHours: 1, MaxTTLHours: 1,
		Subjects: []string{UnknownActor, "iam:" + UnknownActor},
	})
	f.snap = registry.New(f.snap.Source, f.snap.PolicyPackage, actors)
	r := Run(context.Background(), start(t, f), "agt-state-hub-bridge", "")
	last := r.Steps[len(r.Steps)-1]
	if got, want := last.Request.Resource, UnknownActor+"-2"; got != want {
		t.Errorf("got resource %q, want %q", got, want)
	}
	if !r.Pass {
		t.Errorf("got a failure: %+v", r.Steps)
	}
}
