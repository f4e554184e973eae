package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
)

var fuzzSeeds = []string{
	allowBody,
	`{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":24.0}}`,
	`{"subject":"adm-example","resource":"adm-example","context":{"ttl_hours":"24","principal":7}}`,
	`{"subject":"x","action":"ssh.exec","resource":"adm-example","context":{"a":[1,{"b":null}],"c":-1.5e-3}}`,
	`{"subject":"a\u00e9\ud83d\ude00","resource":"b\"\\\/\b\f\n\r\t"}`,
	`{"subject":"a","resource":"b","context":null,"action":null}`,
	`{"subject":"a","resource":"b"} {}`,
	`{"subject":"a","subject":"b","resource":"c"}`,
	`{"subject":"a","resource":"b","context":{"k":1,"k":2}}`,
	`[]`, `""`, `0`, `{`, `{"`, `{"subject":`, `{"subject":"\ud800"}`, "{\"subject\":\"\xff\"}",
	`{"subject":"a","resource":"b","context":{"n":1e400,"m":-9223372036854775809,"o":9223372036854775807}}`,
}

// lineChecker is a decision log that checks every line it gets and keeps
// the last one.
type lineChecker struct {
	bad  atomic.Pointer[string]
	last atomic.Pointer[[]byte]
}

func (c *lineChecker) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 || !json.Valid(line) {
			s := string(line)
			c.bad.Store(&s)
		}
		l := bytes.Clone(line)
		c.last.Store(&l)
	}
	return len(p), nil
}

// FuzzCheckRequest sends arbitrary bodies to POST /v1/check: the answer
// is never a 500 and never a panic; an accepted request always gets a
// decision whose reason the package can give, and its decision log line is
// one valid JSON line recording that decision, written before the answer.
func FuzzCheckRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	log := &lineChecker{}
	s := newTestServer(f, Source{}, log)
	pkg, err := policy.Parse("p.md", fixture(f, examples.OpsWardenPolicy))
	if err != nil {
		f.Fatal(err)
	}
	reasons := pkg.Reasons()
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(s, string(body))
		switch w.Code {
		case http.StatusOK:
			var resp checkResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("200 body %q does not parse: %v", w.Body, err)
			}
			if !slices.Contains(reasons, resp.Reason) {
				t.Errorf("reason %q is not one of the package's %v", resp.Reason, reasons)
			}
			if (resp.Effect == "allow") != (resp.Grant != nil) || resp.Effect != "allow" && resp.Effect != "deny" {
				t.Errorf("effect %q with grant %v", resp.Effect, resp.Grant)
			}
			var logged checkResponse
			if p := log.last.Load(); p == nil || json.Unmarshal(*p, &logged) != nil ||
				logged.DecisionID != resp.DecisionID || logged.Effect != resp.Effect || logged.Reason != resp.Reason ||
				logged.PolicyDigest != resp.PolicyDigest || logged.RegistryDigest != resp.RegistryDigest {
				t.Fatalf("answered %+v, but the last decision log line is %s", resp, derefLine(log.last.Load()))
			}
		case http.StatusBadRequest:
			decodeError(t, w, 400, "invalid_request")
		case http.StatusRequestEntityTooLarge:
			if len(body) <= MaxRequestBytes {
				t.Errorf("413 for %d bytes", len(body))
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if bad := log.bad.Load(); bad != nil {
			t.Fatalf("decision log line is not one JSON line: %q", *bad)
		}
	})
}

// FuzzDecodeRequest checks the request decoder against encoding/json:
// what it accepts, encoding/json reads as the same request; what is not
// JSON, it rejects; and its syntax errors are for text that is not JSON.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	st := newTestServer(f, Source{}, io.Discard).checkState()
	snap := st.snap
	f.Fuzz(func(t *testing.T, data []byte) {
		var req checkRequest
		err := decodeRequest(data, &req, nil, nil)
		// Interned strings and a reused map give the same request.
		var req2 checkRequest
		reuse := map[string]any{"stale": true}
		clear(reuse)
		err2 := decodeRequest(data, &req2, snap, reuse)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("with interning: got %v, without %v", err2, err)
		}
		if err == nil && !reflect.DeepEqual(req, req2) {
			t.Fatalf("with interning: got %#v, without %#v", req2, req)
		}
		valid := json.Valid(data)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *requestError", err)
			}
			if re.syntax && valid {
				t.Fatalf("syntax error %q for valid JSON %q", err, data)
			}
			return
		}
		if !valid {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("encoding/json: %v for accepted %q", err, data)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("encoding/json sees trailing data in accepted %q", data)
		}
		for _, k := range []string{"subject", "resource"} {
			if got, want := field(&req, k), m[k]; got != want {
				t.Errorf("%s: got %q, encoding/json %q", k, got, want)
			}
		}
		wantAction := m["action"]
		if wantAction == nil {
			wantAction = registry.DefaultAction
		}
		if req.Action != wantAction {
			t.Errorf("action: got %q, encoding/json %q", req.Action, wantAction)
		}
		want, _ := convert(t, m["context"]).(map[string]any)
		if len(want) == 0 {
			want = nil
		}
		got := req.Context
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("context: got %#v, encoding/json %#v", got, want)
		}
		// Its decision log line is one line, and records what was asked.
		line := decisionlog.AppendChain(appendLogLine(nil, fixedClock(), []byte("decision:0123456789abcdef"), &req, policy.Decision{Effect: policy.Deny, Reason: "r"}, st), decisionlog.Head{})
		if err := oneLogLine(line); err != nil {
			t.Fatalf("log line for %q: %v", data, err)
		}
		var logged map[string]any
		if err := json.Unmarshal(line, &logged); err != nil {
			t.Fatalf("log line %q does not parse: %v", line, err)
		}
		wantContext := m["context"]
		if wantContext == nil {
			wantContext = map[string]any{}
		}
		var gotContext any
		dec = json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var numbered map[string]any
		if err := dec.Decode(&numbered); err != nil {
			t.Fatal(err)
		}
		gotContext = numbered["context"]
		if logged["subject"] != req.Subject || logged["action"] != req.Action || logged["resource"] != req.Resource || !reflect.DeepEqual(gotContext, wantContext) {
			t.Errorf("log line %s does not record request %q", line, data)
		}
	})
}

func derefLine(p *[]byte) string {
	if p == nil {
		return "(none)"
	}
	return string(*p)
}

func field(req *checkRequest, k string) any {
	if k == "subject" {
		return req.Subject
	}
	return req.Resource
}

// convert applies the number rule independently of the decoder: integer
// literals that fit are int64, other numbers float64.
func convert(t *testing.T, v any) any {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			t.Fatalf("accepted out-of-range number %s", s)
		}
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = convert(t, e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = convert(t, e)
		}
		return out
	}
	return v
}
