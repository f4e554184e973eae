package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/policy"
)

// TestLogFileTornTail checks that a decision log whose last line was cut
// short (the process was killed in the middle of a write) gets its
// fragment ended before new lines are appended: the fragment stays a line
// of its own that does not parse, and the next decision is not swallowed
// by it. That holds for the file opened at start-up and for one reopened
// on SIGHUP.
func TestLogFileTornTail(t *testing.T) {
	const fragment = `{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"decision:00000000`
	tests := []struct {
		name, before string
		wantPrefix   string // what the file holds before the new decision
	}{
		{"empty file", "", ""},
		{"whole lines", "{\"a\":1}\n", "{\"a\":1}\n"},
		{"torn last line", "{\"a\":1}\n" + fragment, "{\"a\":1}\n" + fragment + tornEnd},
		{"only a fragment", fragment, fragment + tornEnd},
		{"a whole object without its newline", "{\"a\":1}", "{\"a\":1}" + tornEnd},
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
				rest, ok := strings.CutPrefix(string(data), tt.wantPrefix)
				if !ok {
					t.Fatalf("log: got %q, want it to start with %q", data, tt.wantPrefix)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(rest), &m); err != nil || m["decision_id"] != resp.DecisionID || !strings.HasSuffix(rest, "}\n") || strings.Count(rest, "\n") != 1 {
					t.Errorf("line after %q: got %q (%v), want one line for decision %s", tt.wantPrefix, rest, err, resp.DecisionID)
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
// ended with tornEnd, is valid JSON: a fragment is never read as a
// decision, wherever the write was cut (inside a string, after a
// backslash, inside a \u escape, a number or a literal, or just before
// the newline).
func TestTornEndInvalidates(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	st := s.checkState()
	req := checkRequest{Subject: "iam:a\"b\\c\u00e9", Action: "ssh.sign", Resource: bridge,
		rawContext: []byte(`{"ttl_hours":24,"n":-1.5e3,"t":true,"f":false,"z":null,"l":[1,"\\\"",{}],"u":"\u00e9\ud83d\ude00"}`)}
	line := appendLogLine(nil, fixedClock(), []byte("decision:0123456789abcdef"), &req, policy.Decision{Effect: policy.Allow, Reason: "signing_policy_matched"}, st)
	if !json.Valid(line) {
		t.Fatalf("the line itself is not JSON: %s", line)
	}
	end := strings.TrimSuffix(tornEnd, "\n")
	if strings.Contains(end, "\n") || !strings.HasSuffix(tornEnd, "\n") {
		t.Fatalf("tornEnd %q: want one line ending in a newline", tornEnd)
	}
	line = line[:len(line)-1] // without its newline
	for i := 1; i <= len(line); i++ {
		if torn := string(line[:i]) + end; json.Valid([]byte(torn)) {
			t.Errorf("fragment of %d bytes ended with tornEnd is valid JSON: %s", i, torn)
		}
	}
}
