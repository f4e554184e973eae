package decisionlog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// referenceMembers reads the top-level members of a JSON object with the
// jsontext decoder, member by member: what Parse's walk over a validated
// line must find.
func referenceMembers(body []byte) (map[string]string, bool) {
	var dec jsontext.Decoder
	dec.Reset(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	m := map[string]string{}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, false
		}
		name := tok.String()
		v, err := dec.ReadValue()
		if err != nil {
			return nil, false
		}
		m[name] = string(v)
	}
	return m, true
}

// FuzzParse checks Parse against the decoder read member by member: every
// member Parse reports is the value the decoder reads, whatever the line.
func FuzzParse(f *testing.F) {
	s, _ := newKey(f, 1)
	var l builder
	l.signer = s
	l.decision()
	l.notGiven("decision:0000000000000001")
	l.torn(`{"time":"x`)
	for _, line := range lines(l.bytes()) {
		f.Add([]byte(line))
	}
	f.Add([]byte(`{"decision_id":"a\"b\\","context":{"x":["}",{"y":"\\\""}]},"seq":1,"prev":"sha256:` + strings.Repeat("0", 64) + `"}` + "\n"))
	f.Add([]byte(` { "decision_id" : "d" , "seq" : 2 } ` + "\n"))
	f.Add([]byte(`{"decision_id":"d","data_digest":"sha256:00","authzen":{"endpoint":"evaluation","subject":{"type":"user","id":"u"}}}` + "\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		var p Parser
		var r Record
		err := p.Parse(line, &r)
		if r.Kind == Torn || err != nil {
			return
		}
		want, ok := referenceMembers(bytes.TrimSuffix(line, []byte("\n")))
		if !ok {
			t.Fatalf("Parse accepted %q, which the decoder does not read", line)
		}
		for name, got := range map[string]jsontext.Value{
			"time": r.Time, "decision_id": r.DecisionID, "subject": r.Subject, "action": r.Action, "resource": r.Resource,
			"context": r.Context, "effect": r.Effect, "reason": r.Reason, "policy": r.Policy, "policy_digest": r.PolicyDigest,
			"registry_digest": r.RegistryDigest, "data_digest": r.DataDigest, "authzen": r.AuthZEN, "not_given": r.NotGivenIDs,
			"why": r.Why, "checkpoint": r.CheckpointText, "signature": r.Signature, "key": r.Key,
		} {
			w, present := want[name]
			if present != (got != nil) || present && !bytes.Equal(bytes.TrimSpace(got), []byte(w)) {
				t.Errorf("%s: Parse found %q, the decoder %q (present %v) in %q", name, got, w, present, line)
			}
		}
	})
}

// FuzzVerify feeds anything to a Verifier: it never panics, and the
// first bad line it names is a line of the input.
func FuzzVerify(f *testing.F) {
	s, _ := newKey(f, 1)
	f.Add(sampleLog(f, s))
	f.Add([]byte("hello\n"))
	f.Add([]byte(`{"decision_id":"d"}` + "\n" + TornMarker + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := NewVerifier(Options{Workers: 2})
		if err := v.Add("log", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		r := v.Result()
		if r.Problem != nil && (r.Problem.Line < 1 || r.Problem.Line > bytes.Count(data, []byte("\n"))+1) {
			t.Errorf("problem at line %d of a log of %d lines", r.Problem.Line, bytes.Count(data, []byte("\n"))+1)
		}
	})
}
