// Package smoke is the operator's pre-flight against a running flex-auth
// (ops-warden registry sync runbook, "Smoke Expectations"): one decision
// asked the way warden sign asks it (Check), and the full smoke of health,
// an allow, a TTL deny and an unknown actor (Run). Everything it reports is
// non-secret evidence: names, decision ids, effects, reasons, digests.
package smoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/registry"
)

// Reasons the ops-warden policy package gives, which the smoke expects.
const (
	ReasonAllowed        = "signing_policy_matched"
	ReasonTTLOutOfBounds = "ttl_out_of_bounds"
	ReasonUnknownActor   = "unknown_actor_resource"
)

// UnknownActor is the resource the smoke asks about to see an unknown actor
// denied; when a registry really has an actor of that name, a suffix makes
// it unknown again.
const UnknownActor = "agt-flex-auth-smoke-nonexistent"

// A Query is one signing question, the way warden sign asks it.
type Query struct {
	Actor     string // the resource: the actor to sign for
	Subject   string // who asks; "" means the actor name
	Principal string // "" sends no principal
	// TTLHours is the TTL asked for; nil asks for the actor's
	// default_ttl_hours from the served registry, as warden sign does,
	// and sends none when the actor is not in it.
	TTLHours *int
}

// TTL sources reported in a Result.
const (
	TTLGiven           = "given"
	TTLRegistryDefault = "registry_default"
	TTLNone            = "none"
)

// A Result is one decision and the request that produced it.
type Result struct {
	URL       string           `json:"url"`
	Actor     string           `json:"actor"`
	Subject   string           `json:"subject"`
	Action    string           `json:"action"`
	Context   map[string]any   `json:"context"`
	TTLSource string           `json:"ttl_source,omitempty"`
	Decision  *client.Decision `json:"decision,omitempty"`
}

// Check asks c for one decision. The Result describes the request even when
// the error is not nil; its Decision is set only when the service answered
// with a well-formed decision.
//
// Check fails closed on an answer that does not match the question: an
// allow whose grant is for another principal or TTL than asked, or for an
// actor the served registry does not list, and a decision made with
// another registry than the one the service reports it serves (GET
// /v1/registry, or GET /healthz when a TTL is given). A reload between the
// two requests is no mismatch: when the digests differ, the service is
// asked again, and the decision's digest may be either. The error is then
// a *MismatchError, and the Result carries the decision refused.
func Check(ctx context.Context, c *client.Client, q Query) (*Result, error) {
	res := &Result{URL: c.URL(), Actor: q.Actor, Subject: q.Subject, Action: registry.DefaultAction, Context: map[string]any{}}
	if res.Subject == "" {
		res.Subject = q.Actor
	}
	if q.Principal != "" {
		res.Context["principal"] = q.Principal
	}
	var served string // the registry digest the service reports
	switch {
	case q.TTLHours != nil:
		res.Context["ttl_hours"] = *q.TTLHours
		res.TTLSource = TTLGiven
		h, err := c.Health(ctx)
		if err != nil {
			return res, fmt.Errorf("ask which registry the service serves: %w", err)
		}
		served = h.Registry.Digest
	default:
		s, err := c.Registry(ctx)
		if err != nil {
			return res, fmt.Errorf("look up the default TTL of %s (give a TTL to skip the lookup): %w", q.Actor, err)
		}
		served = s.Digest
		res.TTLSource = TTLNone
		if a := s.Lookup(q.Actor); a != nil {
			res.Context["ttl_hours"] = a.DefaultTTLHours
			res.TTLSource = TTLRegistryDefault
		}
	}
	d, err := c.Check(ctx, client.Request{Subject: res.Subject, Action: res.Action, Resource: q.Actor, Context: res.Context})
	if err != nil {
		return res, err
	}
	res.Decision = d
	if err := res.checkGrant(); err != nil {
		return res, err
	}
	if d.RegistryDigest != served {
		h, err := c.Health(ctx)
		if err != nil {
			return res, fmt.Errorf("ask again which registry the service serves (the decision's is not the one it reported): %w", err)
		}
		if d.RegistryDigest != h.Registry.Digest {
			return res, &MismatchError{Problem: fmt.Sprintf("the decision was made with registry %s, but the service reports it serves %s", d.RegistryDigest, h.Registry.Digest)}
		}
	}
	return res, nil
}

// A MismatchError is an answer that does not match its question: a
// well-formed decision that no client may act on.
type MismatchError struct {
	Problem string
}

func (e *MismatchError) Error() string {
	return "the answer does not match the question: " + e.Problem
}

// checkGrant checks an allow's grant against what was asked.
func (r *Result) checkGrant() error {
	d := r.Decision
	if !d.Allowed() {
		return nil
	}
	if r.TTLSource == TTLNone {
		return &MismatchError{Problem: fmt.Sprintf("an allow for %s, which the registry the service serves does not list", r.Actor)}
	}
	if p, asked := r.Context["principal"].(string); asked && d.Grant.Principal != p {
		return &MismatchError{Problem: fmt.Sprintf("the grant is for principal %s, the request asked for %s", d.Grant.Principal, p)}
	}
	if ttl, asked := r.Context["ttl_hours"].(int); asked && d.Grant.TTLHours != ttl {
		return &MismatchError{Problem: fmt.Sprintf("the grant is for %d hours, the request asked for %d", d.Grant.TTLHours, ttl)}
	}
	return nil
}

// WriteText writes the result as aligned "name: value" lines.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-16s %s\n", k+":", v) }
	line("url", r.URL)
	line("actor", r.Actor)
	line("subject", r.Subject)
	line("action", r.Action)
	if p, ok := r.Context["principal"]; ok {
		line("principal", fmt.Sprint(p))
	}
	if ttl, ok := r.Context["ttl_hours"]; ok {
		src := ""
		if r.TTLSource == TTLRegistryDefault {
			src = " (the actor's default_ttl_hours)"
		}
		line("ttl_hours", fmt.Sprint(ttl)+src)
	} else {
		line("ttl_hours", "not sent (actor not in the served registry)")
	}
	if d := r.Decision; d != nil {
		line("decision_id", d.ID)
		line("effect", d.Effect)
		line("reason", d.Reason)
		if d.Grant != nil {
			line("grant", fmt.Sprintf("principal %s, ttl %dh", d.Grant.Principal, d.Grant.TTLHours))
		}
		line("policy", d.Policy+" "+d.PolicyDigest)
		line("registry", d.RegistryDigest)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Step names, in the order Run takes them.
const (
	StepHealthz      = "healthz"
	StepRegistry     = "registry"
	StepAllow        = "allow"
	StepDenyTTL      = "deny_ttl"
	StepUnknownActor = "unknown_actor"
)

// A Step is one smoke step: what it wanted and what it got.
type Step struct {
	Name     string           `json:"step"`
	Pass     bool             `json:"pass"`
	Want     string           `json:"want"`
	Request  *client.Request  `json:"request,omitempty"`
	Decision *client.Decision `json:"decision,omitempty"`
	Health   *client.Health   `json:"health,omitempty"`
	Actor    *registry.Actor  `json:"actor,omitempty"`
	// Problem says why the step failed or was not run.
	Problem string `json:"problem,omitempty"`
}

// A Report is the outcome of Run.
type Report struct {
	URL     string `json:"url"`
	Actor   string `json:"actor"`
	Subject string `json:"subject"`
	Pass    bool   `json:"pass"`
	Steps   []Step `json:"steps"`
}

// Run runs the smoke against c for actor, asking as subject ("" means the
// actor name). A degraded service fails the healthz step: it is not serving
// the registry or policy it was last given, which is exactly what an
// operator must not turn policy.enabled on against. When the service
// cannot be reached the remaining steps are not run.
func Run(ctx context.Context, c *client.Client, actor, subject string) *Report {
	if subject == "" {
		subject = actor
	}
	r := &Report{URL: c.URL(), Actor: actor, Subject: subject}
	defer func() {
		r.Pass = len(r.Steps) > 0
		for _, s := range r.Steps {
			r.Pass = r.Pass && s.Pass
		}
	}()

	h, err := c.Health(ctx)
	hs := Step{Name: StepHealthz, Want: `200 with status "ok"`, Health: h}
	switch {
	case err != nil:
		hs.Problem = err.Error()
	case !h.OK():
		hs.Problem = "degraded: the last reload failed"
		if h.Reload.LastError != nil {
			hs.Problem += ": " + *h.Reload.LastError
		}
		hs.Problem += "; the service still answers with the last good registry " + h.Registry.Digest +
			"; fix the reload before turning on policy.enabled"
	default:
		hs.Pass = true
	}
	r.Steps = append(r.Steps, hs)
	if unreachable(err) {
		for _, name := range []string{StepRegistry, StepAllow, StepDenyTTL, StepUnknownActor} {
			r.Steps = append(r.Steps, Step{Name: name, Problem: "not run: the service is unreachable"})
		}
		return r
	}

	snap, err := c.Registry(ctx)
	rs := Step{Name: StepRegistry, Want: "the served registry lists " + actor}
	switch {
	case err != nil:
		rs.Problem = err.Error()
	case snap.Lookup(actor) == nil:
		rs.Problem = fmt.Sprintf("%s is not in the served registry %s (%d actors)", actor, snap.Digest, len(snap.Actors))
	default:
		rs.Actor = snap.Lookup(actor)
		rs.Pass = true
	}
	r.Steps = append(r.Steps, rs)

	if a := rs.Actor; a != nil {
		r.Steps = append(r.Steps,
			decide(ctx, c, StepAllow, client.Request{Subject: subject, Action: registry.DefaultAction, Resource: actor,
				Context: map[string]any{"principal": a.Principal, "ttl_hours": a.DefaultTTLHours}},
				client.Allow, ReasonAllowed, &client.Grant{Principal: a.Principal, TTLHours: a.DefaultTTLHours}),
			decide(ctx, c, StepDenyTTL, client.Request{Subject: subject, Action: registry.DefaultAction, Resource: actor,
				Context: map[string]any{"principal": a.Principal, "ttl_hours": a.MaxTTLHours + 1}},
				client.Deny, ReasonTTLOutOfBounds, nil))
	} else {
		for _, name := range []string{StepAllow, StepDenyTTL} {
			r.Steps = append(r.Steps, Step{Name: name, Problem: "not run: needs " + actor + "'s principal and TTLs from the registry"})
		}
	}

	unknown := UnknownActor
	for i := 2; snap != nil && snap.Lookup(unknown) != nil; i++ {
		unknown = fmt.Sprintf("%s-%d", UnknownActor, i)
	}
	r.Steps = append(r.Steps, decide(ctx, c, StepUnknownActor,
		client.Request{Subject: subject, Action: registry.DefaultAction, Resource: unknown, Context: map[string]any{"ttl_hours": 1}},
		client.Deny, ReasonUnknownActor, nil))
	return r
}

// decide runs one decision step: it passes when the effect, the reason and
// (for an allow) the grant are the expected ones.
func decide(ctx context.Context, c *client.Client, name string, req client.Request, effect, reason string, grant *client.Grant) Step {
	s := Step{Name: name, Want: effect + " " + reason, Request: &req}
	if grant != nil {
		s.Want += fmt.Sprintf(" granting %s for %dh", grant.Principal, grant.TTLHours)
	}
	d, err := c.Check(ctx, req)
	if err != nil {
		s.Problem = err.Error()
		return s
	}
	s.Decision = d
	switch {
	case d.Effect != effect || d.Reason != reason:
		s.Problem = fmt.Sprintf("got %s %s, want %s %s", d.Effect, d.Reason, effect, reason)
	case grant != nil && *d.Grant != *grant:
		s.Problem = fmt.Sprintf("got a grant of %s for %dh, want %s for %dh", d.Grant.Principal, d.Grant.TTLHours, grant.Principal, grant.TTLHours)
	default:
		s.Pass = true
	}
	return s
}

func unreachable(err error) bool {
	var ue *client.UnreachableError
	return errors.As(err, &ue)
}

// WriteText writes one line of evidence per step and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "smoke %s actor=%s subject=%s\n", r.URL, r.Actor, r.Subject)
	passed := 0
	for _, s := range r.Steps {
		mark := "FAIL"
		if s.Pass {
			mark = "PASS"
			passed++
		}
		fmt.Fprintf(&b, "%s %-13s %s\n", mark, s.Name, s.evidence())
	}
	if r.Pass {
		fmt.Fprintf(&b, "smoke: all %d steps passed\n", len(r.Steps))
	} else {
		fmt.Fprintf(&b, "smoke: FAILED, %d of %d steps passed\n", passed, len(r.Steps))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// evidence is the key=value text of one step.
func (s *Step) evidence() string {
	var f []string
	add := func(k string, v any) { f = append(f, fmt.Sprintf("%s=%v", k, v)) }
	if h := s.Health; h != nil {
		add("status", h.Status)
		add("registry", h.Registry.Digest)
		add("actors", h.Registry.Actors)
		add("policy", h.Policy.Package)
		add("policy_digest", h.Policy.Digest)
	}
	if a := s.Actor; a != nil {
		add("actor", a.Name)
		add("principal", a.Principal)
		add("default_ttl_hours", a.DefaultTTLHours)
		add("max_ttl_hours", a.MaxTTLHours)
	}
	if q := s.Request; q != nil {
		add("actor", q.Resource)
		add("subject", q.Subject)
		if ttl, ok := q.Context["ttl_hours"]; ok {
			add("ttl_hours", ttl)
		}
	}
	if d := s.Decision; d != nil {
		add("decision", d.ID)
		add("effect", d.Effect)
		add("reason", d.Reason)
		if g := d.Grant; g != nil {
			add("grant", fmt.Sprintf("%s/%dh", g.Principal, g.TTLHours))
		}
	}
	if !s.Pass {
		if s.Want != "" {
			add("want", fmt.Sprintf("%q", s.Want))
		}
		add("problem", fmt.Sprintf("%q", s.Problem))
	}
	return strings.Join(f, " ")
}
