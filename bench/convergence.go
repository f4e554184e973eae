package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"

	faclient "github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/e2e/chaos"
)

// convergenceSlack is how long after its poll interval a replica may take
// to serve a new publication: the target is a poll and a second.
const convergenceSlack = time.Second

// convergenceProbe is how often each replica's /healthz is asked for the
// new pair once it is published: often enough to time a swap to a few
// milliseconds, seldom enough that ten replicas' probes are not a load of
// their own.
const convergenceProbe = 5 * time.Millisecond

// convergenceRepo is the repository and tag the mode publishes to.
const convergenceRepo = "bench/convergence:production"

// convergenceResult is what one round of the convergence mode measured.
type convergenceResult struct {
	Replicas int     `json:"replicas"`
	Actors   int     `json:"actors"`
	PollMS   float64 `json:"poll_ms"`
	// IdleSeconds is how long the registry's requests were counted with
	// nothing new published; IdleRequests and IdleHeads what it received
	// from each replica in that time: every request, and the manifest
	// HEADs (polls) among them. IdlePerMinute is the mean per replica.
	IdleSeconds   float64 `json:"idle_seconds,omitempty"`
	IdleRequests  []int64 `json:"idle_requests,omitempty"`
	IdleHeads     []int64 `json:"idle_manifest_heads,omitempty"`
	IdlePerMinute float64 `json:"idle_requests_per_replica_per_minute,omitempty"`
	// Load1 is the 1-minute load average when the new pair was published.
	Load1 float64 `json:"load1"`
	// PublishMS is flex-auth publish's wall time for the new pair.
	// ServedMS is, for each replica, the time from publish returning
	// until its /healthz showed the new pair; MaxServedMS the last.
	PublishMS   float64   `json:"publish_ms"`
	ServedMS    []float64 `json:"served_ms"`
	MaxServedMS float64   `json:"max_served_ms"`
	// The load spread over the replicas: Answered and Errors count the
	// whole run, warm-up included; RPS the measured window.
	Conns      int     `json:"conns"`
	RPS        float64 `json:"rps"`
	Answered   int64   `json:"answered"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	// OldPair and NewPair count the decisions answered with each pair.
	// Logged counts the replicas' decision log lines: every answered
	// decision is among them, with the digests it was answered with.
	OldPair int64 `json:"old_pair_decisions"`
	NewPair int64 `json:"new_pair_decisions"`
	Logged  int   `json:"logged"`
}

func (c *convergenceResult) poll() time.Duration {
	return time.Duration(c.PollMS * float64(time.Millisecond))
}

// targetMS is the target for MaxServedMS: the poll interval and a second.
func (c *convergenceResult) targetMS() float64 { return c.PollMS + ms(convergenceSlack) }

// idlePerPoll returns the registry's idle requests per manifest HEAD,
// over all replicas.
func (c *convergenceResult) idlePerPoll() float64 {
	var reqs, heads int64
	for i := range c.IdleRequests {
		reqs, heads = reqs+c.IdleRequests[i], heads+c.IdleHeads[i]
	}
	if heads == 0 {
		return 0
	}
	return float64(reqs) / float64(heads)
}

// idleBound returns the most idle requests per replica per minute that
// are one request a poll: a replica waits four fifths of an interval to
// an interval between polls, and the count may catch one poll more than
// fits in the window.
func (c *convergenceResult) idleBound() float64 {
	return 60e3/(c.PollMS*0.8) + 60/c.IdleSeconds
}

// convergenceRun runs b.ConvergenceReplicas replicas of flex-auth serve
// --source, each polling the same distribution registry on this machine
// every b.ConvergencePoll through a proxy of its own that counts what it
// asks. With nothing new published it counts the requests for
// b.ConvergenceIdle; then, under closed-loop load spread over the
// replicas, it publishes a new pair and times each replica from publish
// returning until its /healthz shows it. Every answered decision must
// carry the old pair or the new one (the old one when answered before the
// publish started, the new one when sent after its replica's /healthz
// showed it), and be in that replica's decision log with the same
// digests; the run fails otherwise.
func (b *bench) convergenceRun(ctx context.Context, round int) (*convergenceResult, error) {
	o, err := b.startOCI(ctx, fmt.Sprintf("convergence-%d", round))
	if err != nil {
		return nil, err
	}
	defer o.close()
	n, poll := b.ConvergenceReplicas, b.ConvergencePoll
	policy, err := os.ReadFile(b.Policy)
	if err != nil {
		return nil, err
	}
	var pairs [2]convergencePair
	for i := range pairs {
		if pairs[i], err = o.writePair(b.ConvergenceActors, policy, fmt.Sprintf("agt-bench-convergence-%d-%d", round, i+1)); err != nil {
			return nil, err
		}
	}
	old, next := pairs[0], pairs[1]
	if err := o.publish(ctx, b.Bin, old.registryFile, old.policyFile, "oci://"+o.reg.addr+"/"+convergenceRepo); err != nil {
		return nil, err
	}
	res := &convergenceResult{Replicas: n, Actors: old.actors, PollMS: ms(poll)}

	counters := make([]*registryCounter, n)
	for i := range counters {
		if counters[i], err = startRegistryCounter(o.reg.addr); err != nil {
			return nil, err
		}
		defer counters[i].close()
	}
	servers, logs, err := b.startReplicas(ctx, o, counters)
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.kill()
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	for i, s := range servers {
		if d, err := healthzDigest(s.addr); err != nil || d != old.registryDigest {
			return nil, fmt.Errorf("convergence: replica %d: /healthz digest %q (%v), want %s", i, d, err, old.registryDigest)
		}
	}

	if b.ConvergenceIdle > 0 {
		if err := measureIdle(ctx, counters, b.ConvergenceIdle, res); err != nil {
			return nil, err
		}
	}

	mix, err := buildMix(o.snapshot(b.ConvergenceActors, ""), "127.0.0.1", largeMixActors)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, n)
	for i, s := range servers {
		addrs[i] = s.addr
	}
	conns := (b.Conns + n - 1) / n * n // as many on each replica
	answers := newAnswerLog(conns)
	var publishAt time.Time
	seen := make([]time.Time, n)
	// The publish waits a second into the measured window, and the
	// window lasts until the target and two seconds after it returned,
	// when that took a second: a replica on time answers the new pair
	// for a while under the load. Later replicas are timed all the same.
	duration := max(b.Duration, poll+convergenceSlack+4*time.Second)
	onMeasure, published := atWindowStart(func() error {
		waitUntil(ctx, time.Now().Add(time.Second))
		res.Load1 = loadAverage()
		publishAt = time.Now()
		if err := o.publish(ctx, b.Bin, next.registryFile, next.policyFile, "oci://"+o.reg.addr+"/"+convergenceRepo); err != nil {
			return err
		}
		done := time.Now()
		res.PublishMS = ms(done.Sub(publishAt))
		timeout := max(10*poll, 30*time.Second)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if seen[i], errs[i] = waitDigest(ctx, s.addr, next.registryDigest, timeout, convergenceProbe); errs[i] != nil {
					errs[i] = fmt.Errorf("replica %d: %w", i, errs[i])
				}
			}()
		}
		wg.Wait()
		for _, t := range seen {
			res.ServedMS = append(res.ServedMS, ms(t.Sub(done)))
		}
		res.MaxServedMS = slices.Max(res.ServedMS)
		return errors.Join(errs...)
	})
	l := &load{addrs: addrs, requests: mix, conns: conns, warmup: b.Warmup, duration: duration, check: true,
		onAnswer: answers.add, onMeasure: onMeasure}
	lr, err := l.run(ctx)
	if err != nil {
		return nil, err
	}
	if err := <-published; err != nil {
		return nil, fmt.Errorf("convergence: the new publication: %w", err)
	}
	res.Conns, res.RPS, res.Answered, res.Errors, res.FirstError = conns, lr.rps(), lr.okTotal, lr.errsTotal, lr.firstError()
	for i, s := range servers {
		if err := s.stop(); err != nil {
			return nil, err
		}
		servers[i] = nil
	}
	if err := answers.check(old.served, next.served, publishAt, seen, res); err != nil {
		return nil, fmt.Errorf("convergence: %w", err)
	}
	for i, file := range logs {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		v := chaos.ReadLog(filepath.Base(file), data).Verify(answers.received(i, n))
		if !v.OK() {
			return nil, fmt.Errorf("convergence: replica %d's decision log against the decisions it answered: %s", i, v)
		}
		res.Logged += v.Logged
	}
	return res, nil
}

// startReplicas starts a replica for each counter, all at once, polling
// the registry through it, each with its decision log in a file of its
// own. The servers that started are returned even with an error.
func (b *bench) startReplicas(ctx context.Context, o *ociBench, counters []*registryCounter) ([]*server, []string, error) {
	servers := make([]*server, len(counters))
	logs := make([]string, len(counters))
	errs := make([]error, len(counters))
	var wg sync.WaitGroup
	for i, c := range counters {
		logs[i] = filepath.Join(o.dir, fmt.Sprintf("decisions-%d.log", i))
		argv := []string{b.Bin, "serve", "--addr", "{addr}", "--source", "oci://" + c.addr + "/" + convergenceRepo, "--plain-http",
			"--verify-key", o.allowed, "--poll", b.ConvergencePoll.String(), "--log", logs[i]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = startServer(ctx, fmt.Sprintf("flex-auth replica %d", i), argv, nil)
		}()
	}
	wg.Wait()
	return servers, logs, errors.Join(errs...)
}

// measureIdle counts the registry's requests from each replica for d.
func measureIdle(ctx context.Context, counters []*registryCounter, d time.Duration, res *convergenceResult) error {
	reqs0, heads0 := make([]int64, len(counters)), make([]int64, len(counters))
	for i, c := range counters {
		reqs0[i], heads0[i] = c.requests.Load(), c.manifestHeads.Load()
	}
	t0 := time.Now()
	waitUntil(ctx, t0.Add(d))
	if err := ctx.Err(); err != nil {
		return err
	}
	idle := time.Since(t0)
	var total int64
	for i, c := range counters {
		reqs, heads := c.requests.Load()-reqs0[i], c.manifestHeads.Load()-heads0[i]
		res.IdleRequests = append(res.IdleRequests, reqs)
		res.IdleHeads = append(res.IdleHeads, heads)
		total += reqs
	}
	res.IdleSeconds = idle.Seconds()
	res.IdlePerMinute = float64(total) / float64(len(counters)) / idle.Minutes()
	return nil
}

// A convergencePair is a registry snapshot and a policy package written to
// files, as publish takes them, and how a replica serving them names them.
type convergencePair struct {
	registryFile, policyFile string
	actors                   int
	registryDigest           string
	// served is "policy_digest registry_digest", as decisions carry them.
	served string
}

// writePair writes a registry of n generated actors, the example's and
// extra, and the policy package with a comment naming extra: a pair with
// digests of its own that decides every request of the mix as any other.
func (o *ociBench) writePair(n int, policy []byte, extra string) (convergencePair, error) {
	s := o.snapshot(n, extra)
	pol := fmt.Appendf(slices.Clip(policy), "\n<!-- %s -->\n", extra)
	p := convergencePair{
		registryFile: filepath.Join(o.dir, extra+".json"), policyFile: filepath.Join(o.dir, extra+".md"),
		actors: len(s.Actors), registryDigest: s.Digest,
	}
	sum := sha256.Sum256(pol)
	p.served = "sha256:" + hex.EncodeToString(sum[:]) + " " + s.Digest
	if err := writeFileAtomic(p.registryFile, s.Canonical()); err != nil {
		return p, err
	}
	return p, writeFileAtomic(p.policyFile, pol)
}

// A registryCounter stands between one replica and the registry: it
// forwards every request and counts them, so that what the registry
// receives is known replica by replica.
type registryCounter struct {
	addr     string
	srv      *http.Server
	requests atomic.Int64
	// manifestHeads counts the polls: a manifest HEAD each.
	manifestHeads atomic.Int64
}

// startRegistryCounter starts a registryCounter on a free loopback port
// in front of the registry at addr.
func startRegistryCounter(addr string) (*registryCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &registryCounter{addr: ln.Addr().String()}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&url.URL{Scheme: "http", Host: addr})
	}}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			c.manifestHeads.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go c.srv.Serve(ln)
	return c, nil
}

func (c *registryCounter) close() { c.srv.Close() }

// An answerLog keeps every decision the load was answered, by
// connection; each connection's worker appends to its own list.
type answerLog struct {
	conns [][]answered
	// strs interns each connection's repeated strings (effects, reasons,
	// digests): a run keeps hundreds of thousands of answers.
	strs []map[string]string
	// bad holds, by connection, the first answer that was not a
	// well-formed decision.
	bad []error
}

// An answered is one decision as its client received it, and when.
type answered struct {
	sent, done time.Time
	chaos.Received
}

func newAnswerLog(conns int) *answerLog {
	a := &answerLog{conns: make([][]answered, conns), strs: make([]map[string]string, conns), bad: make([]error, conns)}
	for i := range a.strs {
		a.strs[i] = map[string]string{}
	}
	return a
}

// add keeps one answer of connection conn; it is load.onAnswer.
func (a *answerLog) add(conn int, sent, done time.Time, body []byte) {
	var d faclient.Decision
	err := json.Unmarshal(body, &d)
	if err == nil {
		err = d.Check()
	}
	if err != nil {
		if a.bad[conn] == nil {
			a.bad[conn] = fmt.Errorf("connection %d: an answer that is not a decision: %v: %.300s", conn, err, body)
		}
		return
	}
	strs := a.strs[conn]
	for _, p := range []*string{&d.Effect, &d.Reason, &d.Policy, &d.PolicyDigest, &d.RegistryDigest} {
		if v, ok := strs[*p]; ok {
			*p = v
		} else {
			strs[*p] = *p
		}
	}
	a.conns[conn] = append(a.conns[conn], answered{sent: sent, done: done, Received: chaos.Received{
		ID: d.ID, Effect: d.Effect, Reason: d.Reason, Policy: d.Policy, PolicyDigest: d.PolicyDigest, RegistryDigest: d.RegistryDigest,
	}})
}

// check checks that every decision was answered with the old pair or the
// new one, published at publishAt: the old one when answered before,
// the new one when sent after its replica's /healthz showed it (at
// seen[replica]; connection i went to replica i mod len(seen)). It
// counts the decisions of each pair into res.
func (a *answerLog) check(old, next string, publishAt time.Time, seen []time.Time, res *convergenceResult) error {
	var wrong int
	var first string
	bad := func(format string, args ...any) {
		if wrong++; wrong == 1 {
			first = fmt.Sprintf(format, args...)
		}
	}
	for c, list := range a.conns {
		replica := c % len(seen)
		for _, d := range list {
			pair := d.PolicyDigest + " " + d.RegistryDigest
			switch {
			case pair == old && !d.sent.Before(seen[replica]):
				bad("replica %d answered decision %s with the old pair, asked %s after its /healthz showed the new one",
					replica, d.ID, d.sent.Sub(seen[replica]))
			case pair == old:
				res.OldPair++
			case pair == next && d.done.Before(publishAt):
				bad("replica %d answered decision %s with the new pair %s before it was published", replica, d.ID, publishAt.Sub(d.done))
			case pair == next:
				res.NewPair++
			default:
				bad("replica %d answered decision %s with %s, not a pair that was published", replica, d.ID, pair)
			}
		}
	}
	if err := errors.Join(a.bad...); err != nil {
		return err
	}
	if wrong > 0 {
		return fmt.Errorf("%d decisions answered with the wrong pair; the first: %s", wrong, first)
	}
	return nil
}

// received returns the decisions replica i of n answered.
func (a *answerLog) received(i, n int) []chaos.Received {
	var out []chaos.Received
	for c := i; c < len(a.conns); c += n {
		for _, d := range a.conns[c] {
			out = append(out, d.Received)
		}
	}
	return out
}
