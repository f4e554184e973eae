package serve

import (
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
)

// gatedSyncer is a decision log whose flushes block while its gate is
// closed; it records how much of the log each flush covered.
type gatedSyncer struct {
	syncBuffer
	mu      sync.Mutex
	gate    chan struct{} // nil: flushes go through
	entered chan struct{} // receives when a flush starts
	covered []int         // bytes written when each flush started
	fail    bool
}

func newGatedSyncer() *gatedSyncer { return &gatedSyncer{entered: make(chan struct{}, 100)} }

func (g *gatedSyncer) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
}

// step lets the flush in progress return and holds the next.
func (g *gatedSyncer) step() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gate)
	g.gate = make(chan struct{})
}

func (g *gatedSyncer) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

func (g *gatedSyncer) Sync() error {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.covered = append(g.covered, len(g.String()))
	g.mu.Unlock()
	g.entered <- struct{}{}
	if gate != nil {
		<-gate
	}
	if fail {
		return syscall.EIO
	}
	return nil
}

func (g *gatedSyncer) flushes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.covered...)
}

// TestLogSyncPipelined: with --log-sync, lines that come while a flush
// runs wait for it, then go in one write, which the next flush covers;
// each decision is answered only after a flush that began once its line
// was written.
func TestLogSyncPipelined(t *testing.T) {
	g := newGatedSyncer()
	s, err := New(Options{Source: builtin, DecisionLog: g, LogSync: true, LogTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g.hold()
	first := make(chan checkResponse, 1)
	go func() { first <- decodeCheck(t, post(s, allowBody)) }()
	<-g.entered // the first flush holds
	second := make(chan checkResponse, 1)
	third := make(chan checkResponse, 1)
	go func() { second <- decodeCheck(t, post(s, allowBody)) }()
	go func() { third <- decodeCheck(t, post(s, allowBody)) }()
	waitFor(t, "two lines waiting for the first flush", func() bool { return s.log.queued() == 2 })
	if n := strings.Count(g.String(), "\n"); n != 1 {
		t.Errorf("lines written during the first flush: got %d, want the first alone", n)
	}
	select {
	case <-first:
		t.Fatal("the first decision was answered before its flush returned")
	default:
	}
	g.step()    // the first flush returns, the second holds
	<-g.entered // the second flush
	a := <-first
	select {
	case <-second:
		t.Fatal("the second decision was answered before its flush returned")
	default:
	}
	if n := strings.Count(g.String(), "\n"); n != 3 {
		t.Errorf("lines written before the second flush: got %d, want all three", n)
	}
	g.open()
	b, c := <-second, <-third
	covered := g.flushes()
	if len(covered) != 2 || covered[1] != len(g.String()) {
		t.Fatalf("flushes covered %v bytes of %d: want a second flush covering the two later lines", covered, len(g.String()))
	}
	if r := verifyBytes(t, []byte(g.String()), decisionlog.Options{}); !r.Intact() || r.Decisions != 3 {
		t.Errorf("log: %v, %d decisions", r.Problem, r.Decisions)
	}
	for _, d := range []checkResponse{a, b, c} {
		if !strings.Contains(g.String(), d.DecisionID) {
			t.Errorf("answer %s not in the log:\n%s", d.DecisionID, g.String())
		}
	}
}

// TestLogSyncFails: a flush that fails answers 503 for the decisions it
// covered, which are in the file, so a not_given record names them; the
// chain holds through it and decisions are given again once flushes work.
func TestLogSyncFails(t *testing.T) {
	g := newGatedSyncer()
	s, err := New(Options{Source: builtin, DecisionLog: g, LogSync: true, LogTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range g.entered {
		}
	}()
	decodeCheck(t, post(s, allowBody))
	g.mu.Lock()
	g.fail = true
	g.mu.Unlock()
	decodeError(t, post(s, allowBody), http.StatusServiceUnavailable, "decision_log_unavailable")
	if e := healthLogError(t, s); e == nil || !strings.Contains(*e, "input/output error") {
		t.Errorf("healthz: got %v, want the flush's error", e)
	}
	g.mu.Lock()
	g.fail = false
	g.mu.Unlock()
	decodeCheck(t, post(s, allowBody))
	if e := healthLogError(t, s); e != nil {
		t.Errorf("healthz after recovery: got %q", *e)
	}
	r := verifyBytes(t, []byte(g.String()), decisionlog.Options{})
	if !r.Intact() || r.Decisions != 3 || r.NotGiven != 1 {
		t.Errorf("log: %v, %d decisions, %d not_given records:\n%s", r.Problem, r.Decisions, r.NotGiven, g.String())
	}
}

// TestLogSyncStuck: a flush that does not return within the log timeout
// makes the log stuck (503 at once, degraded), answers the decisions
// waiting for it, and records them not given once it returns.
func TestLogSyncStuck(t *testing.T) {
	const timeout = 200 * time.Millisecond
	g := newGatedSyncer()
	s, err := New(Options{Source: builtin, DecisionLog: g, LogSync: true, LogTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range g.entered {
		}
	}()
	g.hold()
	start := time.Now()
	decodeError(t, post(s, allowBody), http.StatusServiceUnavailable, "decision_log_unavailable")
	if took := time.Since(start); took > timeout+5*time.Second {
		t.Errorf("answered after %s, want about %s", took, timeout)
	}
	waitFor(t, "the log stuck", func() bool { return s.log.Chain().Head.Seq > 0 && health(t, s).Status == "degraded" })
	if h := health(t, s); h.DecisionLog.LastError == nil || !strings.Contains(*h.DecisionLog.LastError, "a flush (fdatasync) has not returned") {
		t.Errorf("healthz: %+v", h.DecisionLog)
	}
	if m := do(s, http.MethodGet, "/metrics", "", "", nil).Body.String(); !strings.Contains(m, "flexauth_decision_log_stuck 1") {
		t.Error("metrics: want flexauth_decision_log_stuck 1")
	}
	start = time.Now()
	decodeError(t, post(s, allowBody), http.StatusServiceUnavailable, "decision_log_unavailable")
	if took := time.Since(start); took >= timeout {
		t.Errorf("stuck: answered after %s, want at once", took)
	}
	g.open()
	waitFor(t, "decisions given again", func() bool { return post(s, allowBody).Code == http.StatusOK })
	r := verifyBytes(t, []byte(g.String()), decisionlog.Options{})
	if !r.Intact() || r.NotGiven != 1 {
		t.Errorf("log: %v, %d not_given records:\n%s", r.Problem, r.NotGiven, g.String())
	}
}
