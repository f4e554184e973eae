package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/coulomb/flex-auth/decisionlog"
)

func TestDecisionLogLine(t *testing.T) {
	polDigest, regDigest := builtinPair(t)
	tests := []struct {
		name, body string
		// line is the expected line with %[1]s for the decision id.
		line string
	}{
		{"allow", allowBody,
			`{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"%[1]s","subject":"iam:agt-state-hub-bridge","action":"ssh.sign","resource":"agt-state-hub-bridge","context":{"principal":"agt-task-bridge","ttl_hours":24},"effect":"allow","reason":"signing_policy_matched","policy":"ops-warden/ssh-signing","policy_digest":"%[2]s","registry_digest":"%[3]s","seq":1,"prev":"%[4]s"}`},
		{"default action and no context", `{"resource":"agt-nobody","subject":"agt-nobody"}`,
			`{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"%[1]s","subject":"agt-nobody","action":"ssh.sign","resource":"agt-nobody","context":{},"effect":"deny","reason":"unknown_actor_resource","policy":"ops-warden/ssh-signing","policy_digest":"%[2]s","registry_digest":"%[3]s","seq":1,"prev":"%[4]s"}`},
		{"multi-line context is compacted, strings kept", "{\"subject\":\"adm-example\",\"resource\":\"adm-example\",\"context\":{\n  \"ttl_hours\": 2.50,\n  \"note\": \"a  b\\n\\\"c\\\" \\u00e9\",\n  \"tags\": [ 1 , true, null ]\n}}",
			`{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"%[1]s","subject":"adm-example","action":"ssh.sign","resource":"adm-example","context":{"ttl_hours":2.50,"note":"a  b\n\"c\" \u00e9","tags":[1,true,null]},"effect":"deny","reason":"ttl_out_of_bounds","policy":"ops-warden/ssh-signing","policy_digest":"%[2]s","registry_digest":"%[3]s","seq":1,"prev":"%[4]s"}`},
		{"strings are escaped", `{"subject":"a\"b\\c\u0001\u00e9","action":"x\ny","resource":"agt-nobody"}`,
			`{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"%[1]s","subject":"a\"b\\c\u0001é","action":"x\ny","resource":"agt-nobody","context":{},"effect":"deny","reason":"unknown_actor_resource","policy":"ops-warden/ssh-signing","policy_digest":"%[2]s","registry_digest":"%[3]s","seq":1,"prev":"%[4]s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &syncBuffer{}
			s := newTestServer(t, Source{}, log)
			h := http.Header{"Authorization": {"Bearer s3cret-token"}, "X-Api-Key": {"k3y-value"}}
			resp := decodeCheck(t, do(s, http.MethodPost, "/v1/check", tt.body, "application/json", h))
			want := fmt.Sprintf(tt.line, resp.DecisionID, polDigest, regDigest, decisionlog.Hash{}) + "\n"
			if got := log.String(); got != want {
				t.Errorf("log line:\ngot  %s\nwant %s", got, want)
			}
			if strings.Contains(log.String(), "s3cret") || strings.Contains(log.String(), "k3y") {
				t.Errorf("log line contains a request header: %s", log)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(log.String()), &m); err != nil {
				t.Errorf("log line does not parse: %v", err)
			}
		})
	}
}

// eventLog records the order in which the decision log write and the
// response happen.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.events, ",")
}

// gateWriter blocks every write until release is closed.
type gateWriter struct {
	events  *eventLog
	entered chan struct{}
	release chan struct{}
	writes  atomic.Int32
	log     syncBuffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if g.writes.Add(1) == 1 {
		close(g.entered)
	}
	if g.events != nil {
		g.events.add("log-write-start")
	}
	<-g.release
	if g.events != nil {
		g.events.add("log-write-end")
	}
	return g.log.Write(p)
}

type recordingWriter struct {
	*httptest.ResponseRecorder
	events *eventLog
}

func (w recordingWriter) WriteHeader(code int) {
	w.events.add("response")
	w.ResponseRecorder.WriteHeader(code)
}

func TestLogWrittenBeforeResponse(t *testing.T) {
	events := &eventLog{}
	g := &gateWriter{events: events, entered: make(chan struct{}), release: make(chan struct{})}
	s := newTestServer(t, Source{}, g)
	rec := recordingWriter{httptest.NewRecorder(), events}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(allowBody))
		r.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(rec, r)
	}()
	<-g.entered
	select {
	case <-done:
		t.Fatal("the handler answered while its decision log write was blocked")
	default:
	}
	close(g.release)
	<-done
	if got, want := events.String(), "log-write-start,log-write-end,response"; got != want {
		t.Errorf("order: got %s, want %s", got, want)
	}
	if resp := decodeCheck(t, rec.ResponseRecorder); resp.Effect != "allow" {
		t.Errorf("effect: got %s, want allow", resp.Effect)
	}
}

func TestGroupCommit(t *testing.T) {
	g := &gateWriter{entered: make(chan struct{}), release: make(chan struct{})}
	s := newTestServer(t, Source{}, g)
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n+1)
	wg.Go(func() { codes[0] = post(s, allowBody).Code })
	<-g.entered // the first batch is being written
	for i := 1; i <= n; i++ {
		wg.Go(func() { codes[i] = post(s, allowBody).Code })
	}
	waitFor(t, "8 decisions queued behind the first write", func() bool { return s.log.queued() == n })
	close(g.release)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: got %d, want 200", i, c)
		}
	}
	if got := g.writes.Load(); got != 2 {
		t.Errorf("writes: got %d, want 2 (one for the first decision, one for the 8 queued behind it)", got)
	}
	if got := len(g.log.lines(t)); got != n+1 {
		t.Errorf("log lines: got %d, want %d", got, n+1)
	}
}

// faultyWriter fails while failing is set; with short set, a failing write
// first writes half of its bytes, as a full disk can.
type faultyWriter struct {
	failing atomic.Bool
	short   bool
	syncs   atomic.Int32
	syncErr atomic.Bool
	syncBuffer
}

func (f *faultyWriter) Write(p []byte) (int, error) {
	if f.failing.Load() {
		if f.short {
			n, _ := f.syncBuffer.Write(p[:len(p)/2])
			return n, syscall.ENOSPC
		}
		return 0, syscall.ENOSPC
	}
	return f.syncBuffer.Write(p)
}

func (f *faultyWriter) Sync() error {
	f.syncs.Add(1)
	if f.syncErr.Load() {
		return syscall.EIO
	}
	return nil
}

func healthLogError(t *testing.T, s *Server) *string {
	t.Helper()
	var h Health
	if err := json.Unmarshal(do(s, http.MethodGet, "/healthz", "", "", nil).Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	return h.DecisionLog.LastError
}

func TestLogFailure(t *testing.T) {
	f := &faultyWriter{}
	s := newTestServer(t, Source{}, f)
	f.failing.Store(true)
	for _, body := range []string{allowBody, `{"subject":"agt-nobody","resource":"agt-nobody"}`} {
		w := post(s, body)
		decodeError(t, w, 503, "decision_log_unavailable")
		if strings.Contains(w.Body.String(), "allow") || strings.Contains(w.Body.String(), "no space") {
			t.Errorf("503 body %s mentions an allow or the internal error", w.Body)
		}
	}
	if e := healthLogError(t, s); e == nil || !strings.Contains(*e, "no space") {
		t.Errorf("healthz decision_log.last_error: got %v, want the write error", e)
	}
	metrics := do(s, http.MethodGet, "/metrics", "", "", nil).Body.String()
	if !strings.Contains(metrics, "flexauth_decision_log_errors_total 2") {
		t.Errorf("metrics: want flexauth_decision_log_errors_total 2")
	}
	if strings.Contains(metrics, `flexauth_decisions_total{`) {
		t.Errorf("metrics: a decision that was never answered was counted")
	}

	f.failing.Store(false)
	if resp := decodeCheck(t, post(s, allowBody)); resp.Effect != "allow" {
		t.Errorf("after recovery: got %s, want allow", resp.Effect)
	}
	if e := healthLogError(t, s); e != nil {
		t.Errorf("healthz decision_log.last_error after recovery: got %q, want null", *e)
	}
	if got := len(f.lines(t)); got != 1 {
		t.Errorf("log lines: got %d, want 1", got)
	}
}

// TestTornWrite checks that a write cut short leaves a fragment that does
// not parse and does not swallow the next line.
func TestTornWrite(t *testing.T) {
	f := &faultyWriter{short: true}
	s := newTestServer(t, Source{}, f)
	f.failing.Store(true)
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable")
	f.failing.Store(false)
	resp := decodeCheck(t, post(s, allowBody))
	lines := strings.Split(f.String(), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("log: got %q, want a fragment, a line and a final newline", f.String())
	}
	var m map[string]any
	if json.Unmarshal([]byte(lines[0]), &m) == nil {
		t.Errorf("fragment %q parses; want it detectably torn", lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || m["decision_id"] != resp.DecisionID {
		t.Errorf("line after the fragment: got %q (%v), want decision %s", lines[1], err, resp.DecisionID)
	}
}

func TestLogSync(t *testing.T) {
	f := &faultyWriter{}
	s, err := New(Options{Source: builtin, DecisionLog: f, LogSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	decodeCheck(t, post(s, allowBody))
	if got := f.syncs.Load(); got != 1 {
		t.Errorf("syncs: got %d, want 1", got)
	}
	f.syncErr.Store(true)
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable")
	f.syncErr.Store(false)
	decodeCheck(t, post(s, allowBody))

	// Without LogSync, nothing is synced.
	g := &faultyWriter{}
	s2 := newTestServer(t, Source{}, g)
	decodeCheck(t, post(s2, allowBody))
	if got := g.syncs.Load(); got != 0 {
		t.Errorf("syncs without LogSync: got %d, want 0", got)
	}
}

func TestLogClosed(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	s.Close()
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable")
}

func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.jsonl")
	f, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newTestServer(t, Source{}, f)
	first := decodeCheck(t, post(s, allowBody))
	if err := os.Rename(path, path+".1"); err != nil { // logrotate
		t.Fatal(err)
	}
	second := decodeCheck(t, post(s, allowBody)) // still to the moved file
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	third := decodeCheck(t, post(s, allowBody))
	ids := func(name string) []string {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for line := range strings.Lines(string(data)) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, m["decision_id"].(string))
		}
		return out
	}
	if got, want := strings.Join(ids(path+".1"), " "), first.DecisionID+" "+second.DecisionID; got != want {
		t.Errorf("rotated file: got %s, want %s", got, want)
	}
	if got, want := strings.Join(ids(path), " "), third.DecisionID; got != want {
		t.Errorf("new file: got %s, want %s", got, want)
	}

	// A reopen that fails keeps the old file in use.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.log.Reopen(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reopen in a removed directory: got %v, want not exist", err)
	}
	if resp := decodeCheck(t, post(s, allowBody)); resp.Effect != "allow" {
		t.Errorf("after a failed reopen: got %s, want allow", resp.Effect)
	}
}

type panicWriter struct{ panicking atomic.Bool }

func (p *panicWriter) Write(b []byte) (int, error) {
	if p.panicking.Load() {
		panic("disk on fire")
	}
	return len(b), nil
}

func TestLogWriterPanic(t *testing.T) {
	p := &panicWriter{}
	s := newTestServer(t, Source{}, p)
	p.panicking.Store(true)
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable")
	p.panicking.Store(false)
	if resp := decodeCheck(t, post(s, allowBody)); resp.Effect != "allow" {
		t.Errorf("after the panic: got %s, want allow", resp.Effect)
	}
}

// TestDecisionLogConcurrentWritersReopenAndClose writes from many
// goroutines while the file is rotated and reopened, then closes the log:
// every line that was acknowledged is in one of the files, exactly once,
// and writes after Close are refused.
func TestDecisionLogConcurrentWritersReopenAndClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	f, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := newDecisionLog(f, logConfig{sync: true, logger: slog.New(slog.DiscardHandler)})
	const writers, each = 16, 300
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &logEntry{errc: make(chan error, 1)}
			for i := range each {
				e.line = fmt.Appendf(e.line[:0], `{"decision_id":"w%d-%d"`, w, i)
				if err := l.write(e); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	rotated := 0
	for acked.Load() < writers*each/2 && rotated < 50 {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, rotated)); err != nil {
			t.Fatal(err)
		}
		if err := l.Reopen(context.Background()); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		rotated++
	}
	wg.Wait()
	l.Close()
	if err := l.write(&logEntry{line: []byte(`{"decision_id":"late"`), errc: make(chan error, 1)}); !errors.Is(err, ErrLogClosed) {
		t.Errorf("write after Close: got %v, want ErrLogClosed", err)
	}
	// The files, in the order they were written, are one intact chain
	// holding every line once.
	files := make([]string, 0, rotated+1)
	for i := range rotated {
		files = append(files, fmt.Sprintf("%s.%d", path, i))
	}
	files = append(files, path)
	r := verifyLog(t, files...)
	if !r.Intact() {
		t.Errorf("chain across %d files: %v", len(files), r.Problem)
	}
	if r.Decisions != writers*each || r.TornCount != 0 {
		t.Errorf("got %d records and %d torn lines in %d files, want %d and 0", r.Decisions, r.TornCount, len(files), writers*each)
	}
	seen := map[string]int{}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			seen[m["decision_id"].(string)]++
		}
	}
	if got, want := len(seen), writers*each; got != want {
		t.Errorf("got %d distinct lines in %d files, want %d", got, len(files), want)
	}
	for line, n := range seen {
		if n != 1 {
			t.Errorf("line %q written %d times, want once", line, n)
		}
	}
	if rotated == 0 {
		t.Errorf("no rotation happened while writing")
	}
}

// queued returns how many entries wait for a batch; tests wait on it.
func (l *decisionLog) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}
