package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/e2e/chaos"
)

// convergencePoll is the replicas' poll interval in TestSourceConvergence:
// short, so that the idle count covers many polls in little time.
const convergencePoll = 2 * time.Second

// TestSourceConvergence runs ten replicas polling one registry while
// load runs across them behind a Service. Idle, each poll is one request
// to the registry; every replica serves a new publication, no request
// fails, no decision carries the new pair before it was published or the
// old one after every replica served the new, and every answered
// decision's log line carries the digests of the pair that answered it.
//
// The target, every replica within a poll interval and a second of the
// publication, is a speed target: the bench tool checks it (go run
// ./scripts/bench -convergence, ten replicas of the real binary against
// the same registry, under its load generator) and reports the idle
// requests per replica per minute. Here, beside the other tests under
// -race on a shared machine, a replica fails the test only when it is
// later than followSlack after the interval; the times are logged.
func TestSourceConvergence(t *testing.T) {
	// Not parallel: its bound is about timing, and the other tests of
	// this package run load of their own.
	e := newOCIEnv(t)
	first, second := e.pair(t), e.pair(t)
	e.publish(t, first)

	const n = 10
	replicas := make([]*replica, n)
	proxies := make([]*faultProxy, n)
	var wg sync.WaitGroup
	for i := range replicas {
		// A proxy each, to count each replica's requests.
		proxies[i] = newFaultProxy(t, e.reg.Addr)
		r := &replica{name: fmt.Sprintf("flex-auth-%d", i), server: newServer(t)}
		replicas[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.server.start(t, "serve", "--addr", "127.0.0.1:0", "--source", "oci://"+proxies[i].Addr+"/"+e.repo+":"+e.tag, "--plain-http",
				"--verify-key", e.allowed, "--poll", convergencePoll.String(), "--log", "-")
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, r := range replicas {
		addr := strings.TrimPrefix(r.URL, "http://")
		r.addr.Store(&addr)
		r.logs = append(r.logs, r.stdout)
	}
	_, front := startService(t, replicas)
	load := startLoad(t, front, 4)
	load.SetPhase("before")
	waitAnswered(t, load, "before", 200)

	// Idle: count the registry's requests over at least six polls of
	// every replica.
	startRequests, startHeads := make([]int64, n), make([]int64, n)
	for i, p := range proxies {
		startRequests[i], startHeads[i] = p.requests.Load(), p.heads.Load()
	}
	idleStart := time.Now()
	replicas[0].waitFor("six polls of every replica", func() bool {
		for i, p := range proxies {
			if p.heads.Load()-startHeads[i] < 6 {
				return false
			}
		}
		return true
	})
	idle := time.Since(idleStart)
	var total int64
	var perReplica []string
	for i, p := range proxies {
		reqs := p.requests.Load() - startRequests[i]
		heads := p.heads.Load() - startHeads[i]
		total += reqs
		if reqs != heads {
			t.Errorf("replica %d: %d requests in %d polls while idle, want one HEAD per poll", i, reqs, heads)
		}
		perReplica = append(perReplica, fmt.Sprintf("%.1f", float64(reqs)/idle.Minutes()))
	}
	rate := float64(total) / n / idle.Minutes()
	// The waits are four fifths of an interval to one interval.
	if max := 60 / (convergencePoll.Seconds() * 0.8); rate > max*1.1 {
		t.Errorf("%.1f requests per replica per minute while idle, want at most %.1f (one per poll)", rate, max)
	}

	load.SetPhase("publish")
	published := time.Now()
	e.publish(t, second)
	took := make([]time.Duration, n)
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.waitFor("the new publication is served", func() bool {
				h := r.health()
				return str(h, "policy.digest")+" "+str(h, "registry.digest") == second.served()
			})
			took[i] = time.Since(published)
		}()
	}
	wg.Wait()
	convergence := time.Since(published)
	for i, d := range took {
		if d > convergencePoll+followSlack {
			t.Errorf("%s served the new publication %s after it was published, want within the poll interval (%s) and %s", replicas[i].name, d, convergencePoll, followSlack)
		}
	}
	load.SetPhase("after")
	waitAnswered(t, load, "after", 200)
	answers := load.Stop()

	for _, a := range answers {
		if a.Decision == nil {
			t.Errorf("phase %s: request failed: %v", a.Phase, a.Err)
			continue
		}
		// An answer that came in "before" was decided before the
		// publication; a request sent in "after" was decided after every
		// replica served it. One sent earlier may come back later, with
		// either.
		pair := a.Decision.PolicyDigest + " " + a.Decision.RegistryDigest
		switch {
		case pair != first.served() && pair != second.served():
			t.Errorf("phase %s: decision %s from %s, not a pair that was published", a.Phase, a.Decision.ID, pair)
		case a.Phase == "before" && pair != first.served():
			t.Errorf("decision %s from the second publication before it was published", a.Decision.ID)
		case a.SentIn == "after" && pair != second.served():
			t.Errorf("decision %s from the first publication, asked after every replica served the second", a.Decision.ID)
		}
	}
	for _, r := range replicas {
		r.signal(sigterm)
		if code := r.wait(); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM, want 0", r.name, code)
		}
	}
	log := chaos.NewLog()
	for _, r := range replicas {
		log.AddSeparate(r.name, []byte(r.stdout.String())) // each replica chains its own
	}
	v := log.Verify(chaos.ReceivedOf(answers))
	if !v.OK() {
		t.Errorf("decision logs against the answers: %s", v)
	}
	t.Logf("convergence: %d replicas served the new publication %s after it was published (each: %s), poll %s",
		n, convergence.Round(time.Millisecond), roundAll(took), convergencePoll)
	t.Logf("idle: %.1f registry requests per replica per minute at a %s poll (each: %s), over %s",
		rate, convergencePoll, strings.Join(perReplica, ", "), idle.Round(time.Second))
	for _, p := range chaos.Tally(answers) {
		t.Logf("convergence %s: %d requests, %d decisions, failures: %s", p.Phase, p.Requests, p.Decisions, chaos.FailureCounts(p.Failures))
	}
	t.Logf("convergence: %s", v)
}
