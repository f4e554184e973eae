package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"torn last line", "{\"a\":1}\n" + fragment, "{\"a\":1}\n" + fragment + "\n"},
		{"only a fragment", fragment, fragment + "\n"},
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
