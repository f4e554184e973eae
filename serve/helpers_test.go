package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
)

const (
	bridge      = "agt-state-hub-bridge"
	allowBody   = `{"subject":"iam:agt-state-hub-bridge","action":"ssh.sign","resource":"agt-state-hub-bridge","context":{"principal":"agt-task-bridge","ttl_hours":24}}`
	fixtureTime = "2026-06-23T10:11:12.000000007Z"
)

var builtin = Source{Registry: examples.OpsWardenRegistry, Policy: examples.OpsWardenPolicy, FS: examples.OpsWarden, Name: "built-in example ops-warden"}

// syncBuffer is a decision log that tests can read while the server writes.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "\n") {
			t.Fatalf("decision log ends in a partial line %q", line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("decision log line %q does not parse: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// fixedClock returns fixtureTime in a zone other than UTC, as time.Now
// does on a host that is not set to UTC: every time the server shows must
// still come out in UTC.
func fixedClock() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, fixtureTime)
	return t.In(time.FixedZone("CEST", 2*60*60))
}

// newTestServer returns a server for src (the built-in example when src
// is the zero Source) logging decisions to log.
func newTestServer(t testing.TB, src Source, log io.Writer) *Server {
	t.Helper()
	if src == (Source{}) {
		src = builtin
	}
	// A log timeout far beyond any stall of a loaded machine: these tests
	// are not about it (logstuck_test.go is).
	s, err := New(Options{Source: src, DecisionLog: log, Clock: fixedClock, LogTimeout: time.Minute})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// post sends body to POST /v1/check as JSON.
func post(h http.Handler, body string) *httptest.ResponseRecorder {
	return do(h, http.MethodPost, "/v1/check", body, "application/json", nil)
}

func do(h http.Handler, method, path, body, contentType string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// checkResponse is a decoded 200 answer of POST /v1/check.
type checkResponse struct {
	DecisionID     string `json:"decision_id"`
	Effect         string `json:"effect"`
	Reason         string `json:"reason"`
	Policy         string `json:"policy"`
	PolicyDigest   string `json:"policy_digest"`
	RegistryDigest string `json:"registry_digest"`
	Grant          *struct {
		Principal string `json:"principal"`
		TTLHours  int64  `json:"ttl_hours"`
	} `json:"grant"`
}

var decisionIDPattern = regexp.MustCompile(`^decision:[0-9a-f]{16}$`)

func decodeCheck(t testing.TB, w *httptest.ResponseRecorder) checkResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var resp checkResponse
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("decode response %s: %v", w.Body, err)
	}
	if !decisionIDPattern.MatchString(resp.DecisionID) {
		t.Errorf("decision_id: got %q, want decision:<16 lowercase hex>", resp.DecisionID)
	}
	return resp
}

// errorBody is a decoded error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t testing.TB, w *httptest.ResponseRecorder, status int, code string) errorBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status: got %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("decode error body %s: %v", w.Body, err)
	}
	if e.Error.Code != code {
		t.Errorf("error code: got %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Errorf("error message is empty")
	}
	return e
}

// fixture returns the bytes of an example file.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := examples.OpsWarden.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// builtinPair returns the example's registry and policy digests.
func builtinPair(t testing.TB) (policyDigest, registryDigest string) {
	t.Helper()
	pkg, err := policy.Parse("p.md", fixture(t, examples.OpsWardenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := registry.Parse(fixture(t, examples.OpsWardenRegistry))
	if err != nil {
		t.Fatal(err)
	}
	return pkg.Digest(), snap.Digest
}

// fileSource writes the example pair into a temporary directory and
// returns a Source reading it there.
func fileSource(t testing.TB) (Source, string) {
	t.Helper()
	dir := t.TempDir()
	src := Source{Registry: filepath.Join(dir, "registry.json"), Policy: filepath.Join(dir, "policy.md")}
	writeFile(t, src.Registry, fixture(t, examples.OpsWardenRegistry))
	writeFile(t, src.Policy, fixture(t, examples.OpsWardenPolicy))
	return src, dir
}

// writeFile replaces path atomically, as deploy tools do.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// altRegistry returns a valid snapshot for the ops-warden package that
// differs from the fixture: only agt-state-hub-bridge is in it, with a
// max TTL of 12 hours, and a different digest.
func altRegistry(t testing.TB, policyPackage string) *registry.Snapshot {
	t.Helper()
	return registry.New("ops-warden", policyPackage, []registry.Actor{{
		Name: bridge, Type: "agt", Principal: "agt-task-bridge", DefaultTTLHours: 12, MaxTTLHours: 12,
		Subjects: []string{bridge, "iam:" + bridge},
	}})
}

// waitFor polls cond until it holds or 30s pass: generous, for a busy
// machine running -race, and free for a passing test, whose wait ends as
// soon as cond holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lineBreaks are the characters that some common line-oriented reader
// ends a line at: Go's bufio.ScanLines (\n), C and most tools (\n, \r),
// Python's str.splitlines (\n, \r, \v, \f, U+001C to U+001E, U+0085,
// U+2028, U+2029), JavaScript (\n, \r, U+2028, U+2029) and Unicode's
// mandatory breaks (the same, and U+000B, U+000C, U+0085).
const lineBreaks = "\n\r\v\f\x1c\x1d\x1e\u0085\u2028\u2029"

// oneLogLine checks that line is one decision log line for every reader:
// valid JSON, ended by its only line break, with no other character that
// a reader could take for one, nor any other control character.
func oneLogLine(line []byte) error {
	body, ok := bytes.CutSuffix(line, []byte("\n"))
	if !ok {
		return fmt.Errorf("%q does not end in a newline", line)
	}
	if i := bytes.IndexAny(body, lineBreaks); i >= 0 {
		return fmt.Errorf("%q has a line break at byte %d", line, i)
	}
	if i := bytes.IndexFunc(body, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%q has a control character at byte %d", line, i)
	}
	if !json.Valid(body) {
		return fmt.Errorf("%q is not JSON", line)
	}
	return nil
}

// verifyLog verifies decision log files, in the order they were written,
// as flex-auth log verify does.
func verifyLog(t testing.TB, files ...string) *decisionlog.Result {
	t.Helper()
	v := decisionlog.NewVerifier(decisionlog.Options{})
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		err = v.Add(filepath.Base(name), f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return v.Result()
}
