package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/policy"
)

func TestEscapeLineBreaks(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"plain é ✓ 😀"`, `"plain é ✓ 😀"`},
		{"\"a\u0085b\"", `"a\u0085b"`},
		{"\"\u2028\u2029\"", `"\u2028\u2029"`},
		{"\"\x7f\u0080\u009b\u009f\u00a0\"", `"\u007f\u0080\u009b\u009f` + "\u00a0\""},
		{"[\"\u2027\u202a\u2028x\",\"\u0085\"]", "[\"\u2027\u202a\\u2028x\",\"\\u0085\"]"},
		{"\"\u00c2\u00e2\u0080\"", "\"\u00c2\u00e2\\u0080\""}, // lead bytes alone are not breaks
	}
	for _, tt := range tests {
		t.Run(strconv.QuoteToASCII(tt.in), func(t *testing.T) {
			got := escapeLineBreaks([]byte("x"+tt.in), 1)
			if string(got) != "x"+tt.want {
				t.Errorf("got %q, want %q", got[1:], tt.want)
			}
			var before, after any
			if json.Unmarshal([]byte(tt.in), &before) != nil || json.Unmarshal(got[1:], &after) != nil {
				t.Fatalf("not JSON: %q -> %q", tt.in, got[1:])
			}
			if !reflect.DeepEqual(before, after) {
				t.Errorf("escaping changed the value: %q -> %q", before, after)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { escapeLineBreaks([]byte(`{"a":"plain é"}`), 0) }); n > 1 {
		t.Errorf("got %v allocations for a line with nothing to escape, want only the test's own", n)
	}
}

// breakers are the characters some line-oriented reader splits at (see
// lineBreaks), and other controls, each as a client can send it.
var breakers = []rune{'\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029, 0, 0x1b, 0x7f, 0x9b}

// Every value a client controls reaches the decision log on one line,
// whether it sends a line break escaped or, where JSON allows it, raw.
func TestLogLineNeverBreaks(t *testing.T) {
	for _, r := range breakers {
		sendings := map[string]string{"escaped": fmt.Sprintf(`\u%04x`, r)}
		if r >= 0x7f {
			sendings["raw"] = string(r) // JSON allows it unescaped
		}
		for how, c := range sendings {
			t.Run(strconv.QuoteToASCII(string(r))+" "+how, func(t *testing.T) {
				log := &syncBuffer{}
				s := newTestServer(t, Source{}, log)
				body := `{"subject":"s` + c + `","action":"a` + c + `","resource":"r` + c + `","context":{"k` + c + `":"v` + c + `","l":["` + c + `"]}}`
				if w := post(s, body); w.Code != http.StatusOK {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				line := []byte(log.String())
				if err := oneLogLine(line); err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(bytes.NewReader(line))
				n := 0
				for sc.Scan() {
					n++
				}
				if n != 1 {
					t.Errorf("bufio.Scanner reads %d lines, want 1", n)
				}
				var got struct {
					Subject, Action, Resource string
					Context                   map[string]any
				}
				if err := json.Unmarshal(line, &got); err != nil {
					t.Fatal(err)
				}
				s0 := string(r)
				if got.Subject != "s"+s0 || got.Action != "a"+s0 || got.Resource != "r"+s0 || got.Context["k"+s0] != "v"+s0 || !reflect.DeepEqual(got.Context["l"], []any{s0}) {
					t.Errorf("log line %s does not hold the values sent", line)
				}
			})
		}
	}
}

// FuzzLogLine writes decision log lines for arbitrary client values: each
// is one line for every reader, and reads back as what was decoded.
func FuzzLogLine(f *testing.F) {
	f.Add("iam:agt-a", "ssh.sign", "agt-a", "k", "v")
	for _, r := range breakers {
		f.Add(string(r), "a"+string(r), "\u00e9"+string(r), string(r)+"k", "v"+string(r)+"\\")
	}
	st := newTestServer(f, Source{}, &syncBuffer{}).checkState()
	f.Fuzz(func(t *testing.T, subject, action, resource, key, val string) {
		// The context as a client may write it: raw where JSON allows.
		raw := []byte(`{ "` + key + `" : "` + val + "\"\n}")
		if !jsontext.Value(raw).IsValid() {
			var err error
			if raw, err = json.Marshal(map[string]string{key: val}); err != nil {
				t.Fatal(err)
			}
		}
		var req checkRequest
		body, err := json.Marshal(map[string]any{"subject": subject, "action": action, "resource": resource, "context": json.RawMessage(raw)})
		if err != nil || decodeRequest(body, &req, st.snap, nil) != nil {
			return // not a request: nothing is logged
		}
		line := decisionlog.AppendChain(appendLogLine(nil, fixedClock(), []byte("decision:0123456789abcdef"), &req, policy.Decision{Effect: policy.Deny, Reason: "r"}, st), decisionlog.Head{})
		if err := oneLogLine(line); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Subject, Action, Resource string
			Context                   map[string]string
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		if got.Subject != req.Subject || got.Action != req.Action || got.Resource != req.Resource {
			t.Fatalf("log line %s does not hold %+v", line, req)
		}
		for k, v := range req.Context {
			if got.Context[k] != v {
				t.Fatalf("log line %s: context[%q] = %q, want %q", line, k, got.Context[k], v)
			}
		}
	})
}
