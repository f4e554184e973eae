package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/policy"
)

// legacyLine is a decision line as a flex-auth before the hash chain
// wrote it.
const legacyLine = `{"time":"2026-06-22T10:11:12.000000007Z","decision_id":"decision:0000000000000001","subject":"s","action":"ssh.sign","resource":"r","context":{},"effect":"deny","reason":"unknown_actor_resource","policy":"ops-warden/ssh-signing","policy_digest":"sha256:00","registry_digest":"sha256:00"}` + "\n"

// TestLogFileTornTail checks that a decision log whose last line was cut
// short (the process was killed in the middle of a write) gets its
// fragment ended before new lines are appended: the fragment stays a line
// of its own that does not parse, the next decision is not swallowed by
// it, and the chain goes on through it. That holds for the file opened at
// start-up and for one reopened on SIGHUP.
func TestLogFileTornTail(t *testing.T) {
	const fragment = `{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"decision:00000000`
	chained := func() string {
		b, _ := decisionlog.Link([]byte(strings.TrimSuffix(legacyLine, "}\n")), 0, decisionlog.Head{})
		return string(b)
	}()
	tests := []struct {
		name, before string
		torn         bool
	}{
		{"empty file", "", false},
		{"written before the chain", legacyLine, false},
		{"chained", chained, false},
		{"torn last line", legacyLine + fragment, true},
		{"torn after a chained line", chained + fragment, true},
		{"only a fragment", fragment, true},
		{"a whole object without its newline", strings.TrimSuffix(chained, "\n"), true},
	}
	for _, tt := range tests {
		for _, reopen := range []bool{false, true} {
			name := tt.name
			if reopen {
				name += " reopened"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "decisions.jsonl")
				initial := tt.before
				if reopen {
					initial = ""
				}
				if err := os.WriteFile(path, []byte(initial), 0o640); err != nil {
					t.Fatal(err)
				}
				f, err := OpenLogFile(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				s := newTestServer(t, Source{}, f)
				if reopen {
					// The file is replaced under the server (a restore
					// from backup, another writer that crashed) and
					// reopened on SIGHUP.
					if err := os.WriteFile(path+".new", []byte(tt.before), 0o640); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(path+".new", path); err != nil {
						t.Fatal(err)
					}
					if err := s.Reload(); err != nil {
						t.Fatal(err)
					}
				}
				resp := decodeCheck(t, post(s, allowBody))
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				rest, ok := strings.CutPrefix(string(data), tt.before)
				if !ok {
					t.Fatalf("log: got %q, want it to start with %q", data, tt.before)
				}
				ls := strings.SplitAfter(rest, "\n")
				if ls[len(ls)-1] != "" {
					t.Fatalf("log does not end in a newline: %q", data)
				}
				ls = ls[:len(ls)-1]
				if want := map[bool]int{false: 1, true: 2}[tt.torn]; len(ls) != want {
					t.Fatalf("lines after %q: got %q, want %d", tt.before, rest, want)
				}
				var p decisionlog.Parser
				var r decisionlog.Record
				if tt.torn {
					if err := p.Parse([]byte(tt.before[strings.LastIndexByte(tt.before, '\n')+1:]+ls[0]), &r); err != nil || r.Kind != decisionlog.Torn || !r.Chained {
						t.Errorf("the fragment's end %q: got %v %v, want a chained torn line", ls[0], r.Kind, err)
					}
				}
				last := ls[len(ls)-1]
				if err := p.Parse([]byte(last), &r); err != nil || r.Kind != decisionlog.Decision || decisionlog.String(r.DecisionID) != resp.DecisionID {
					t.Fatalf("last line: got %q (%v), want decision %s", last, err, resp.DecisionID)
				}
				// It links to the line before it, whatever that is, in a
				// file the server opened; in one replaced under it, to
				// the chain the server wrote, or to the torn line it
				// ended.
				before := strings.TrimSuffix(string(data), last)
				if prevLine := before[strings.LastIndexByte(strings.TrimSuffix(before, "\n"), '\n')+1:]; before != "" && (!reopen || tt.torn) && r.Prev != decisionlog.HashOf([]byte(prevLine)) {
					t.Errorf("the decision's prev %s is not the hash of the line before it, %q", r.Prev, prevLine)
				}
				if !reopen {
					if v := verifyLog(t, path); !v.Intact() {
						t.Errorf("verify: %v\n%s", v.Problem, data)
					}
				}
			})
		}
	}
}

func TestLogFileSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	f, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("Sync: got %v, want nil", err)
	}
	f.Close()
	err = f.Sync()
	if err == nil || !strings.Contains(err.Error(), "decisions.log") {
		t.Errorf("Sync after Close: got %v, want an error naming the file", err)
	}
}

// TestTornEndInvalidates checks that no prefix of a decision log line,
// ended with the torn line's end, is valid JSON: a fragment is never read
// as a decision, wherever the write was cut (inside a string, after a
// backslash, inside a \u escape, a number or a literal, or just before
// the newline).
func TestTornEndInvalidates(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	st := s.checkState()
	req := checkRequest{Subject: "iam:a\"b\\c\u00e9", Action: "ssh.sign", Resource: bridge,
		rawContext: []byte(`{"ttl_hours":24,"n":-1.5e3,"t":true,"f":false,"z":null,"l":[1,"\\\"",{}],"u":"\u00e9\ud83d\ude00"}`)}
	line := appendLogLine(nil, fixedClock(), []byte("decision:0123456789abcdef"), &req, policy.Decision{Effect: policy.Allow, Reason: "signing_policy_matched"}, st)
	head := decisionlog.Head{Seq: 7, Hash: decisionlog.HashOf([]byte("x\n"))}
	line = decisionlog.AppendChain(line, head)
	if !json.Valid(line) {
		t.Fatalf("the line itself is not JSON: %s", line)
	}
	tornEnd := string(decisionlog.AppendTornEnd(nil, head))
	end := strings.TrimSuffix(tornEnd, "\n")
	if strings.Contains(end, "\n") || !strings.HasSuffix(tornEnd, "\n") {
		t.Fatalf("torn end %q: want one line ending in a newline", tornEnd)
	}
	line = line[:len(line)-1] // without its newline
	for i := 1; i <= len(line); i++ {
		if torn := string(line[:i]) + end; json.Valid([]byte(torn)) {
			t.Errorf("fragment of %d bytes ended with %q is valid JSON: %s", i, end, torn)
		}
	}
}
