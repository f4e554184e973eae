package drift

import (
	"fmt"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/internal/render"
	"github.com/coulomb/flex-auth/policy"
)

// A Policy names a policy package and its digest ("sha256:" and the hex
// SHA-256 of the package's file): the one a running flex-auth serves its
// registry with, the one a publication carries, or the checked-in one
// that goes with EXPECTED.
type Policy struct {
	// Package is the package's name ("ops-warden/ssh-signing").
	Package string
	Digest  string
	// File is the file a checked-in package was read from; "" for one a
	// side serves.
	File string
}

// CheckedIn returns the Policy of pkg, a package read from its file
// (policy.Load), to compare what the sides serve with.
func CheckedIn(pkg *policy.Package) *Policy {
	return &Policy{Package: pkg.Name(), Digest: pkg.Digest(), File: pkg.File()}
}

// String names the policy the way reports do:
// "ops-warden/ssh-signing sha256:...".
func (p *Policy) String() string { return p.Package + " " + p.Digest }

// serves is the verb for what a side does with its policy.
func serves(s *Side) string {
	if s.Kind == Publication {
		return "carries"
	}
	return "serves"
}

// comparePolicies compares the policy each side serves with want, the
// checked-in package that goes with EXPECTED, nil when none was given. A
// side serving another package than want is drift; an ACTUAL that does
// not say which policy it serves is a note. Without want, two sides
// serving different packages are a note, not drift: without --policy,
// drift compares registries, as the contract says, and no check that
// passed before fails now.
func (r *Report) comparePolicies(want *Policy) {
	r.Policy = want
	e, a := r.Expected.Policy, r.Actual.Policy
	if want == nil {
		if e != nil && a != nil && e.Digest != a.Digest {
			r.Notes = append(r.Notes, fmt.Sprintf("policy not compared: EXPECTED %s %s policy %s, ACTUAL %s %s %s; drift compares policies only with the checked-in package (--policy FILE)",
				r.Expected.Source, serves(r.Expected), e, r.Actual.Source, serves(r.Actual), a))
		}
		return
	}
	if e != nil && e.Digest != want.Digest {
		r.Findings = append(r.Findings, Finding{Kind: PolicyDrift, Side: "expected", Message: fmt.Sprintf(
			"EXPECTED %s %s policy %s, but the checked-in %s, given as its package, is %s; give --policy the package that goes with EXPECTED, or bring EXPECTED up to date",
			r.Expected.Source, serves(r.Expected), e, want.File, want)})
	}
	switch {
	case a == nil:
		r.Notes = append(r.Notes, fmt.Sprintf("policy not compared: ACTUAL %s %s; the checked-in %s is %s", r.Actual.Source, unknownPolicy(r.Actual), want.File, want))
	case a.Digest != want.Digest:
		fix := "deploy the checked-in package to the service and reload it (SIGHUP or --watch)"
		if r.Actual.Kind == Publication {
			fix = "publish the checked-in package with the registry (flex-auth publish --policy " + shellQuote(want.File) + ")"
		}
		r.Findings = append(r.Findings, Finding{Kind: PolicyDrift, Side: "actual", Message: fmt.Sprintf(
			"ACTUAL %s %s policy %s, not the checked-in %s (%s); %s", r.Actual.Source, serves(r.Actual), a, want.File, want, fix)})
	}
}

// unknownPolicy says why a side's policy is not known.
func unknownPolicy(s *Side) string {
	switch s.Kind {
	case Runtime:
		return "does not say which policy it serves (no " + client.HeaderPolicyDigest + " header: a flex-auth from before it was sent, or a proxy that drops it)"
	case Inventory:
		return "is an inventory, which does not say which policy goes with it"
	}
	return "is a snapshot file, which names its policy package but not the policy's digest"
}

// policyCompared reports whether ACTUAL's policy was compared with the
// checked-in package.
func (r *Report) policyCompared() bool { return r.Policy != nil && r.Actual.Policy != nil }

// registryInSync reports whether ACTUAL's registry, and its file, are
// what EXPECTED says, whatever the policies.
func (r *Report) registryInSync() bool {
	return len(r.Changes) == 0 && !r.hasFinding(func(f Finding) bool { return f.Kind != PolicyDrift })
}

// policyDrifted reports whether a policy finding is about side
// ("expected" or "actual").
func (r *Report) policyDrifted(side string) bool {
	return r.hasFinding(func(f Finding) bool { return f.Kind == PolicyDrift && f.Side == side })
}

func (r *Report) hasFinding(match func(Finding) bool) bool {
	for _, f := range r.Findings {
		if match(f) {
			return true
		}
	}
	return false
}

// policyHint says how to bring the policy in line, when it is the policy
// alone that drifted; in Markdown when md is set.
func (r *Report) policyHint(md bool) string {
	code := func(s string) string { return codeIf(md, s) }
	switch {
	case !r.policyDrifted("actual"):
		return "To fix, give --policy the package that goes with EXPECTED, or bring EXPECTED up to date, then run drift again."
	case r.Actual.Kind == Publication:
		return "To fix, publish EXPECTED's snapshot with the checked-in policy package: " +
			code(shellQuote("flex-auth", "publish", "--registry", "SNAPSHOT", "--policy", r.Policy.File, "--sign-key", "KEY", r.Actual.Source)) + ", then run drift again."
	}
	return "To fix, deploy the checked-in policy package " + code(r.Policy.File) + " to the service and reload it (SIGHUP or --watch), then run drift again."
}

// codeIf formats s as a Markdown code span when md is set.
func codeIf(md bool, s string) string {
	if md {
		return render.Code(s)
	}
	return s
}

// policyCell is a policy's digest in the Markdown table.
func policyCell(p *Policy) string {
	if p == nil {
		return "unknown"
	}
	cell := render.Code(p.Digest)
	if p.File != "" {
		cell += " (checked in: " + render.Code(p.File) + ")"
	}
	return cell
}

// expectedPolicy is the policy that goes with EXPECTED: the checked-in
// package when one is given, else the one EXPECTED serves.
func (r *Report) expectedPolicy() *Policy {
	if r.Policy != nil {
		return r.Policy
	}
	return r.Expected.Policy
}
