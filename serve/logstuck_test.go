package serve

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
)

// stuckWriter, once blocked, blocks every write until it is unblocked, the
// way a write(2) to a FIFO nobody reads or to a hung file system blocks;
// then it writes to log.
type stuckWriter struct {
	mu      sync.Mutex
	release chan struct{} // nil: writes go through
	entered chan struct{} // closed when a write blocks
	log     syncBuffer
}

func (s *stuckWriter) block() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release, s.entered = make(chan struct{}), make(chan struct{})
}

func (s *stuckWriter) unblock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.release)
	s.release = nil
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	release, entered := s.release, s.entered
	s.mu.Unlock()
	if release != nil {
		select {
		case <-entered:
		default:
			close(entered)
		}
		<-release
	}
	return s.log.Write(p)
}

// postHTTP sends an allow request over a real connection and returns the
// status, the body and how long the answer took.
func postHTTP(t *testing.T, url string) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url+"/v1/check", "application/json", strings.NewReader(allowBody))
	if err != nil {
		t.Errorf("POST /v1/check: %v", err)
		return 0, "", time.Since(start)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("POST /v1/check: reading the answer: %v", err)
	}
	return resp.StatusCode, string(body), time.Since(start)
}

// TestStuckLog blocks the decision log's write(2) for good: the request
// whose handler is in it (the leader) and those queued behind it are
// answered 503 within the log timeout, later ones at once, /healthz says
// degraded; once the write returns, the log holds a not_given record for
// the decisions it wrote late, and decisions are given again.
func TestStuckLog(t *testing.T) {
	// Long enough that "at once" (below) is far from it on a busy
	// machine under -race.
	const timeout = time.Second
	w := &stuckWriter{}
	s, err := New(Options{Source: builtin, DecisionLog: w, LogTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()

	if code, body, _ := postHTTP(t, ts.URL); code != 200 {
		t.Fatalf("before: got %d %s, want 200", code, body)
	}
	w.block()
	// The leader, and followers queued behind it.
	type answer struct {
		code int
		body string
		took time.Duration
	}
	answers := make([]answer, 5)
	var wg sync.WaitGroup
	wg.Go(func() {
		a := &answers[0]
		a.code, a.body, a.took = postHTTP(t, ts.URL)
	})
	<-w.entered
	for i := 1; i < len(answers); i++ {
		wg.Go(func() {
			a := &answers[i]
			a.code, a.body, a.took = postHTTP(t, ts.URL)
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a.code != 503 || !strings.Contains(a.body, "decision_log_unavailable") {
			t.Errorf("request %d while the write is stuck: got %d %s, want 503 decision_log_unavailable", i, a.code, a.body)
		}
		// The slack is scheduling; a request waiting for the stuck
		// write would wait for the client's 10s.
		if a.took > timeout+5*time.Second {
			t.Errorf("request %d: answered after %s, want within about %s", i, a.took, timeout)
		}
	}
	if answers[0].took < timeout {
		t.Errorf("the request whose write is stuck: answered after %s, want after the log timeout %s", answers[0].took, timeout)
	}
	// Stuck now: refused at once. A refusal that waited for the log
	// timeout would make every answer, so the median, take at least
	// that; one that did not can still be slow now and then.
	var took []time.Duration
	for i := range 5 {
		code, _, d := postHTTP(t, ts.URL)
		if code != 503 {
			t.Errorf("request %d after the log is stuck: got %d, want 503", i, code)
		}
		took = append(took, d)
	}
	slices.Sort(took)
	if median := took[len(took)/2]; median >= timeout/2 {
		t.Errorf("requests after the log is stuck: answered after %s (median of %v), want at once, not after the log timeout %s", median, took, timeout)
	}
	h := health(t, s)
	if h.Status != "degraded" || h.DecisionLog.LastError == nil || !strings.Contains(*h.DecisionLog.LastError, "has not returned") {
		t.Errorf("healthz while stuck: status %s, decision_log %v; want degraded with the stuck write", h.Status, h.DecisionLog.LastError)
	}
	if m := do(s, http.MethodGet, "/metrics", "", "", nil).Body.String(); !strings.Contains(m, "flexauth_decision_log_stuck 1") {
		t.Errorf("metrics while stuck: want flexauth_decision_log_stuck 1")
	}

	w.unblock()
	waitFor(t, "decisions given again", func() bool {
		code, _, _ := postHTTP(t, ts.URL)
		return code == 200
	})
	if h := health(t, s); h.Status != "ok" || h.DecisionLog.LastError != nil {
		t.Errorf("healthz after recovery: status %s, decision_log %v; want ok", h.Status, h.DecisionLog.LastError)
	}
	// The stuck write carried the leader's line: it is in the log, and a
	// not_given record after it names it.
	lines := w.log.lines(t)
	var decisions []string
	notGiven := map[string]bool{}
	for _, l := range lines {
		if id, ok := l["decision_id"].(string); ok {
			decisions = append(decisions, id)
			continue
		}
		ids, ok := l["not_given"].([]any)
		if !ok {
			t.Fatalf("log line %v is neither a decision nor a not_given record", l)
		}
		for _, id := range ids {
			notGiven[id.(string)] = true
		}
	}
	if len(decisions) != 3 || len(notGiven) != 1 || !notGiven[decisions[1]] {
		t.Errorf("log: decisions %v, not given %v; want 3 decisions, the second (written late) not given", decisions, notGiven)
	}
}

// TestStuckLogNoRescue checks an HTTP/2 request, which cannot be answered
// from outside its handler, so never leads (a helper writes its line): it
// is answered 503 within the timeout too.
func TestStuckLogNoRescue(t *testing.T) {
	const timeout = 200 * time.Millisecond
	w := &stuckWriter{}
	s, err := New(Options{Source: builtin, DecisionLog: w, LogTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w.block()
	r := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(allowBody))
	r.Header.Set("Content-Type", "application/json")
	r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { s.ServeHTTP(rec, r); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout + 5*time.Second):
		t.Fatal("an HTTP/2 request was not answered while the log write is stuck")
	}
	decodeError(t, rec, 503, "decision_log_unavailable")
	w.unblock()
	waitFor(t, "decisions given again", func() bool { return post(s, allowBody).Code == 200 })
}

// TestStuckLogClose checks that closing a stuck log does not wait for the
// write.
func TestStuckLogClose(t *testing.T) {
	w := &stuckWriter{}
	l := newDecisionLog(w, logConfig{timeout: 100 * time.Millisecond})
	w.block()
	defer w.unblock()
	go l.write(&logEntry{line: []byte(`{"decision_id":"decision:1"` + "\n"), ids: [][]byte{[]byte("decision:1")}, errc: make(chan error, 1)})
	<-w.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := l.close(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close of a stuck log: got %v, want the stuck write reported", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("close of a stuck log took %s", took)
	}
}

// TestLogTimeoutInQueue checks that a line that waited its time out behind
// a stuck write is answered 503 and never written, even once the write
// returns.
func TestLogTimeoutInQueue(t *testing.T) {
	const timeout = 200 * time.Millisecond
	w := &stuckWriter{}
	l := newDecisionLog(w, logConfig{timeout: timeout})
	defer l.Close()
	w.block()
	first := make(chan error, 1)
	go func() {
		first <- l.write(&logEntry{line: []byte(`{"decision_id":"decision:1"` + "\n"), ids: [][]byte{[]byte("decision:1")}, errc: make(chan error, 1)})
	}()
	<-w.entered
	second := &logEntry{line: []byte(`{"decision_id":"decision:2"` + "\n"), ids: [][]byte{[]byte("decision:2")}, errc: make(chan error, 1)}
	if err := l.write(second); !errors.Is(err, errLogTimeout) && !errors.Is(err, errLogStuck) {
		t.Errorf("line queued behind a stuck write: got %v, want a timeout", err)
	}
	w.unblock()
	// Without a way to answer it (no HTTP response), the leader waited
	// for its write, which succeeded.
	if err := <-first; err != nil {
		t.Errorf("the leader's own line: got %v, want written", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := w.log.String(), string(decisionlog.AppendChain([]byte(`{"decision_id":"decision:1"`), decisionlog.Head{})); got != want {
		t.Errorf("log: got %q, want only the first line, %q", got, want)
	}
}

// TestLogPendingBounded checks that the lines waiting for a write are
// bounded: past maxPending bytes, a decision is refused at once.
func TestLogPendingBounded(t *testing.T) {
	w := &stuckWriter{}
	l := newDecisionLog(w, logConfig{timeout: time.Minute})
	w.block()
	go l.write(&logEntry{line: []byte(`{"decision_id":"first"`), errc: make(chan error, 1)})
	<-w.entered
	line := make([]byte, 1<<20)
	line[len(line)-1] = '\n'
	results := make(chan error, maxPending>>20+1)
	for range maxPending >> 20 {
		go func() { results <- l.write(&logEntry{line: line, errc: make(chan error, 1)}) }()
	}
	waitFor(t, "the queue to fill", func() bool { return l.queued() == maxPending>>20 })
	if err := l.write(&logEntry{line: []byte(`{"decision_id":"one more"`), errc: make(chan error, 1)}); !errors.Is(err, errLogBusy) {
		t.Errorf("a line past %d MiB waiting: got %v, want errLogBusy", maxPending>>20, err)
	}
	w.unblock()
	for range maxPending >> 20 {
		if err := <-results; err != nil {
			t.Errorf("a line that fit in the queue: got %v, want written", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
