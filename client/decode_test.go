package client

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

// FuzzParseDecision checks that whatever a server sends, an accepted
// decision is one the contract allows, that encoding/json reads the same
// decision from it, and that it survives a round trip.
func FuzzParseDecision(f *testing.F) {
	f.Add([]byte(allowBody))
	f.Add([]byte(denyBody))
	f.Add([]byte(`{"effect":"allow"}`))
	f.Add([]byte(`{"decision_id":"decision:0123456789abcdef","effect":"deny","EFFECT":"allow"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseDecision(data)
		if err != nil {
			return
		}
		if checkDecisionID(d.ID) != nil || checkEffect(d.Effect) != nil || checkReason(d.Reason) != nil ||
			checkDigest(d.PolicyDigest) != nil || checkDigest(d.RegistryDigest) != nil {
			t.Fatalf("accepted an invalid decision %+v from %q", d, data)
		}
		if d.Allowed() != (d.Grant != nil) {
			t.Fatalf("accepted %s with grant %v from %q", d.Effect, d.Grant, data)
		}
		// encoding/json, another reader, sees the same decision.
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
		}
		if m["decision_id"] != d.ID || m["effect"] != d.Effect || m["reason"] != d.Reason {
			t.Fatalf("accepted %+v from %q, which encoding/json reads as %v", d, data, m)
		}
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := parseDecision(again)
		if err != nil {
			t.Fatalf("re-encoded decision %s rejected: %v", again, err)
		}
		sameGrant := d.Grant == nil && d2.Grant == nil || d.Grant != nil && d2.Grant != nil && *d.Grant == *d2.Grant
		if !sameGrant || d2.ID != d.ID || d2.Effect != d.Effect || d2.Reason != d.Reason {
			t.Fatalf("round trip: got %+v, want %+v", d2, d)
		}
	})
}

func FuzzParseHealth(f *testing.F) {
	f.Add([]byte(healthBody))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHealth(data)
		if err != nil {
			return
		}
		if h.Status != "ok" && h.Status != "degraded" || checkDigest(h.Registry.Digest) != nil || h.Registry.Actors < 0 {
			t.Fatalf("accepted an invalid health answer %+v from %q", h, data)
		}
	})
}

// FuzzServedPolicy checks that whatever policy headers a server sends, a
// policy is read only from both, once each, well formed, and exactly as
// sent.
func FuzzServedPolicy(f *testing.F) {
	f.Add("ops-warden/ssh-signing", testPolicyDigest, 1, 1)
	f.Add("ops-warden/ssh-signing", "", 1, 0)
	f.Add("Ops Warden", testPolicyDigest, 1, 2)
	f.Fuzz(func(t *testing.T, pkg, digest string, npkg, ndigest int) {
		h := http.Header{}
		for range npkg % 4 {
			h.Add(HeaderPackage, pkg)
		}
		for range ndigest % 4 {
			h.Add(HeaderPolicyDigest, digest)
		}
		p, err := servedPolicy(h)
		switch {
		case err != nil:
			if len(h) == 0 {
				t.Fatalf("no header, error %v", err)
			}
		case p == nil:
			if len(h) != 0 {
				t.Fatalf("headers %v read as no policy", h)
			}
		case len(h.Values(HeaderPackage)) != 1 || len(h.Values(HeaderPolicyDigest)) != 1:
			t.Fatalf("headers %v read as policy %+v", h, p)
		case p.Package != pkg || p.Digest != digest || registry.CheckPackageName(pkg) != nil || checkDigest(digest) != nil:
			t.Fatalf("headers %v read as policy %+v", h, p)
		}
	})
}

func BenchmarkParseDecision(b *testing.B) {
	data := []byte(allowBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseDecision(data); err != nil {
			b.Fatal(err)
		}
	}
}
