package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coulomb/flex-auth/client"
)

// LoadConfig says what load to send.
type LoadConfig struct {
	// URL is the service's base URL.
	URL string
	// Workers send requests one after another, each on its own
	// keep-alive connection.
	Workers int
	// PerWorker bounds the requests of each worker, so that a load that
	// is never stopped still ends; 0 means 100,000. A test that waits
	// for answers phase by phase needs a budget its slowest run does not
	// spend: a busy machine stretches the phases, and the workers answer
	// all the while.
	PerWorker int
	// Requests are sent in turn by every worker.
	Requests []client.Request
	// Timeout bounds each request; 0 means client.DefaultTimeout.
	Timeout time.Duration
	// Phase labels the first answers; "" is "start".
	Phase string
}

// An Answer is the outcome of one request.
type Answer struct {
	Phase string // the phase when the answer came
	// SentIn is the phase when the request was sent. A test that
	// changes what is served, waits until it serves, then sets a phase,
	// knows that requests sent in that phase get the change; one sent
	// before may be answered after, with what was served before.
	SentIn   string
	Request  int              // index into LoadConfig.Requests
	Decision *client.Decision // nil when no decision came back
	Failure  string           // the kind of failure; "" with a decision
	Err      error
	// Sent and Done bound the request in time.
	Sent, Done time.Time
}

// A Load sends decision requests from several workers until stopped.
type Load struct {
	cfg     LoadConfig
	c       *client.Client
	phase   atomic.Pointer[string]
	stop    chan struct{}
	ended   chan struct{} // closed when every worker has returned
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	answers []Answer
	byPhase map[string]int
}

// StartLoad starts the workers.
func StartLoad(cfg LoadConfig) (*Load, error) {
	if cfg.Workers <= 0 || len(cfg.Requests) == 0 {
		return nil, errors.New("load: no workers or no requests")
	}
	if cfg.PerWorker <= 0 {
		cfg.PerWorker = 100_000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = client.DefaultTimeout
	}
	rt := &http.Transport{MaxIdleConnsPerHost: cfg.Workers, DisableCompression: true}
	c, err := client.New(cfg.URL, client.WithTimeout(cfg.Timeout), client.WithTransport(rt))
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	l := &Load{c: c, stop: make(chan struct{}), ended: make(chan struct{}), byPhase: map[string]int{}}
	if cfg.Phase == "" {
		cfg.Phase = "start"
	}
	l.cfg = cfg
	l.SetPhase(cfg.Phase)
	for w := range cfg.Workers {
		l.wg.Add(1)
		go l.work(w)
	}
	go func() {
		l.wg.Wait()
		close(l.ended)
	}()
	return l, nil
}

// SetPhase labels the answers that come from now on.
func (l *Load) SetPhase(name string) { l.phase.Store(&name) }

// Answered returns how many requests of phase have been answered (with a
// decision or a failure).
func (l *Load) Answered(phase string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPhase[phase]
}

// Ended reports whether every worker has returned: the load was stopped,
// or each worker sent its PerWorker requests. No more answers come.
func (l *Load) Ended() bool {
	select {
	case <-l.ended:
		return true
	default:
		return false
	}
}

// WaitAnswered waits until n requests of phase were answered, or ctx is
// done, or the load has ended; it reports whether they were.
func (l *Load) WaitAnswered(ctx context.Context, phase string, n int) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for l.Answered(phase) < n {
		select {
		case <-ctx.Done():
			return false
		case <-l.ended:
			return l.Answered(phase) >= n
		case <-tick.C:
		}
	}
	return true
}

func (l *Load) work(w int) {
	defer l.wg.Done()
	// A long run keeps every answer: share the strings that repeat.
	strs := map[string]string{}
	intern := func(p *string) {
		if v, ok := strs[*p]; ok {
			*p = v
		} else {
			strs[*p] = *p
		}
	}
	for i := range l.cfg.PerWorker {
		select {
		case <-l.stop:
			return
		default:
		}
		k := (w + i) % len(l.cfg.Requests)
		sentIn, sent := *l.phase.Load(), time.Now()
		d, err := l.c.Check(context.Background(), l.cfg.Requests[k])
		a := Answer{Phase: *l.phase.Load(), SentIn: sentIn, Request: k, Decision: d, Err: err, Sent: sent, Done: time.Now()}
		if err != nil {
			a.Decision, a.Failure = nil, FailureKind(err)
		} else {
			for _, p := range []*string{&d.Effect, &d.Reason, &d.Policy, &d.PolicyDigest, &d.RegistryDigest} {
				intern(p)
			}
			if d.Grant != nil {
				intern(&d.Grant.Principal)
			}
		}
		l.mu.Lock()
		l.answers = append(l.answers, a)
		l.byPhase[a.Phase]++
		l.mu.Unlock()
	}
}

// Stop stops the workers and returns every answer. It may be called more
// than once.
func (l *Load) Stop() []Answer {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers
}

// FailureKind names the kind of a client error, for counting: "503
// decision_log_unavailable", "unreachable", "timeout", "malformed answer".
func FailureKind(err error) string {
	var (
		ue *client.UnreachableError
		se *client.StatusError
		pe *client.ProtocolError
	)
	switch {
	case errors.As(err, &se):
		if se.Code != "" {
			return fmt.Sprintf("%d %s", se.StatusCode, se.Code)
		}
		return fmt.Sprintf("%d", se.StatusCode)
	case errors.As(err, &ue) && ue.TimedOut():
		return "timeout"
	case errors.As(err, &ue):
		return "unreachable"
	case errors.As(err, &pe):
		return "malformed answer"
	}
	return "error"
}

// ReceivedOf returns the decisions among answers.
func ReceivedOf(answers []Answer) []Received {
	var out []Received
	for _, a := range answers {
		if d := a.Decision; d != nil {
			out = append(out, Received{ID: d.ID, Effect: d.Effect, Reason: d.Reason, Policy: d.Policy,
				PolicyDigest: d.PolicyDigest, RegistryDigest: d.RegistryDigest})
		}
	}
	return out
}

// PhaseStats counts the answers of one phase.
type PhaseStats struct {
	Phase     string
	Requests  int
	Decisions int
	Allows    int
	Failures  map[string]int // by kind
}

// Tally counts answers by phase, in the order phases first appear.
func Tally(answers []Answer) []*PhaseStats {
	var out []*PhaseStats
	idx := map[string]*PhaseStats{}
	for _, a := range answers {
		p := idx[a.Phase]
		if p == nil {
			p = &PhaseStats{Phase: a.Phase, Failures: map[string]int{}}
			idx[a.Phase] = p
			out = append(out, p)
		}
		p.Requests++
		switch {
		case a.Decision != nil:
			p.Decisions++
			if a.Decision.Allowed() {
				p.Allows++
			}
		default:
			p.Failures[a.Failure]++
		}
	}
	return out
}

// FailureCounts formats failures by kind, sorted: "503 x: 3, unreachable: 1".
func FailureCounts(failures map[string]int) string {
	if len(failures) == 0 {
		return "none"
	}
	kinds := make([]string, 0, len(failures))
	for k := range failures {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, failures[k])
	}
	return b.String()
}
