package e2e

// A cluster on one machine: three replicas run the way deploy/'s
// Deployment runs them, behind a stand-in for their Service, under one
// load, through a ConfigMap update and a rolling restart.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/e2e/chaos"
)

// Timings of the cluster. The probe period is scaled down from
// deploy/base (every 5s) to keep the test short. A probe's timeout is not:
// on a loaded machine a replica can take seconds to answer, which is the
// scheduler's doing, and a probe that gave up sooner would take healthy
// replicas out of the service (all of them at once, and the load fails
// with no ready replica). A replica that answers nothing at all fails the
// load's requests too, which wait as long. The drain covers what it
// covers in a cluster: requests already on their way to a replica when
// it leaves the endpoints (see service.terminate), which on this machine
// is goroutine scheduling, not a probe's period and answer.
const (
	clusterProbePeriod  = 50 * time.Millisecond
	clusterProbeTimeout = 10 * time.Second
	clusterDrainDelay   = time.Second
	// convergenceBound is what the test allows for every replica to serve
	// an updated ConfigMap after its volume was swapped: --watch's 100ms
	// debounce and a reload of the example take a fraction of it, the
	// rest is room for a loaded machine.
	convergenceBound = 5 * time.Second
)

// A replica is one flex-auth serve of the cluster, with its own ConfigMap
// volume (each pod has its own, which its node's kubelet updates) and its
// decision log on stdout, as in deploy/base. Like a pod, it gets a new
// address each time it starts.
type replica struct {
	*server
	name   string
	addr   atomic.Pointer[string] // host:port, read by the service
	volume *configMapVolume
	logs   []*output // stdout of each run, for the log check
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	r.server.start(t, "serve", "--addr", "127.0.0.1:0", "--registry", r.volume.Path("registry.json"),
		"--policy", r.volume.Path("policy_package.md"), "--log", "-", "--watch",
		"--drain-delay", clusterDrainDelay.String())
	addr := strings.TrimPrefix(r.URL, "http://")
	r.addr.Store(&addr)
	r.logs = append(r.logs, r.stdout)
}

// A service stands in for a Kubernetes Service in front of the replicas:
// a prober for each replica keeps as its endpoint the address whose
// /readyz last answered 200 (the kubelet's readiness probe and the
// endpoints it feeds), and each request goes to the next replica with an
// endpoint. A
// replica sent SIGTERM leaves the endpoints at once (terminate), as a
// deleted pod does, without waiting for its probe to fail. A request
// whose connection is refused (a replica between its exit and its
// restart) is sent to the next one, as a client that retries on
// connection refused would.
type service struct {
	replicas []*replica
	// endpoints[i] is the address replica i is reached at while it is
	// ready; nil while it is not.
	endpoints []atomic.Pointer[string]
	// terminated[i] is the address of replica i's process that was sent
	// SIGTERM: never an endpoint again, whatever its probe says.
	terminated []atomic.Pointer[string]
	next       atomic.Uint64
	retried    atomic.Int64 // requests sent again after a refused connection
	transport  *http.Transport
	stop       chan struct{}
	probers    sync.WaitGroup
}

func newService(replicas []*replica) *service {
	s := &service{replicas: replicas, endpoints: make([]atomic.Pointer[string], len(replicas)),
		terminated: make([]atomic.Pointer[string], len(replicas)), stop: make(chan struct{}),
		transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	probe := &http.Client{Timeout: clusterProbeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	for i, r := range replicas {
		s.probers.Add(1)
		go func() {
			defer s.probers.Done()
			tick := time.NewTicker(clusterProbePeriod)
			defer tick.Stop()
			for {
				addr := r.addr.Load()
				resp, err := probe.Get("http://" + *addr + "/readyz")
				if err == nil {
					resp.Body.Close()
				}
				switch ok := err == nil && resp.StatusCode == 200; {
				case ok && s.terminated[i].Load() != addr:
					s.endpoints[i].Store(addr)
				case !ok:
					s.endpoints[i].CompareAndSwap(addr, nil)
				}
				select {
				case <-s.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return s
}

// terminate takes replica i out of the endpoints, as deleting its pod
// does, before the test sends it SIGTERM.
func (s *service) terminate(i int) {
	addr := s.replicas[i].addr.Load()
	s.terminated[i].Store(addr)
	s.endpoints[i].CompareAndSwap(addr, nil)
}

func (s *service) close() {
	close(s.stop)
	s.probers.Wait()
	s.transport.CloseIdleConnections()
}

// RoundTrip sends req to the next replica with an endpoint.
func (s *service) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	n := len(s.replicas)
	var lastErr error
	for attempt := 0; attempt < 2*n; attempt++ {
		addr := s.endpoints[int(s.next.Add(1)%uint64(n))].Load()
		if addr == nil {
			continue
		}
		out := req.Clone(req.Context())
		out.URL.Host = *addr
		out.Host = "flex-auth.flex-auth.svc.cluster.local:8080"
		out.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := s.transport.RoundTrip(out)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			s.retried.Add(1)
			lastErr = err
			continue
		}
		return resp, err
	}
	if lastErr == nil {
		lastErr = errors.New("no ready replica")
	}
	return nil, lastErr
}

// startService puts a service in front of the replicas, waits until it
// routes to each, and returns it with the base URL of an HTTP server
// that forwards to it, as clients reach a Kubernetes Service; both are
// closed when the test ends.
func startService(t *testing.T, replicas []*replica) (*service, string) {
	t.Helper()
	svc := newService(replicas)
	t.Cleanup(svc.close)
	for i := range replicas {
		svc.waitReady(t, i)
	}
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: "flex-auth"}) },
		Transport: svc,
	})
	t.Cleanup(front.Close)
	return svc, front.URL
}

// waitReady waits until the service routes to replica i's process.
func (s *service) waitReady(t *testing.T, i int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for s.endpoints[i].Load() != s.replicas[i].addr.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("replica %d not ready within %s", i, waitTimeout)
		}
		time.Sleep(clusterProbePeriod / 5) // polling the prober's endpoint
	}
}

// TestCluster runs three replicas the way deploy/base does (--watch on a
// ConfigMap volume, --drain-delay, the decision log on stdout) behind a
// Service, under load spread round-robin over them. A ConfigMap update
// reaches every replica within convergenceBound without a failed request,
// every decision carries the old pair or the new one and never a mix, and
// a rolling restart (SIGTERM, drain, start again, one replica at a time)
// fails no request either. Every answered decision is in the replicas'
// decision logs with the digests it was answered with.
func TestCluster(t *testing.T) {
	skipShort(t)
	t.Parallel()
	fixture := loadFixture(t)
	policy := readFile(t, fixturePolicy)
	updated := withBridgeTTL(t, fixture, 12)
	updatedPolicy := append(bytes.Clone(policy), "\n<!-- revision 2: same rules, another digest -->\n"...)
	oldPair := digestOf(policy) + " " + fixture.Digest
	newPair := digestOf(updatedPolicy) + " " + updated.Digest
	configMap := func(reg, pol []byte) map[string][]byte {
		return map[string][]byte{"registry.json": reg, "policy_package.md": pol}
	}

	replicas := make([]*replica, 3)
	for i := range replicas {
		r := &replica{name: fmt.Sprintf("flex-auth-%d", i), server: &server{},
			volume: newConfigMapVolume(t, configMap(fixture.Canonical(), policy))}
		r.start(t)
		replicas[i] = r
	}
	svc, front := startService(t, replicas)
	load := startLoad(t, front, 4)
	load.SetPhase("steady")
	waitAnswered(t, load, "steady", 200)

	// The ConfigMap update: each replica's kubelet swaps its volume.
	load.SetPhase("update")
	start := time.Now()
	swapped := make([]time.Time, len(replicas))
	for i, r := range replicas {
		swapped[i] = r.volume.update(configMap(updated.Canonical(), updatedPolicy))
	}
	converged := make([]time.Duration, len(replicas))
	for i, r := range replicas {
		r.waitFor("the updated ConfigMap is served", func() bool {
			h := r.health()
			return str(h, "policy.digest")+" "+str(h, "registry.digest") == newPair
		})
		converged[i] = time.Since(swapped[i])
	}
	convergence := time.Since(start)
	if convergence > convergenceBound {
		t.Errorf("the replicas served the update %s after the first swap, want within %s", convergence, convergenceBound)
	}
	load.SetPhase("after the update")
	waitAnswered(t, load, "after the update", 200)

	// The rolling restart, one replica at a time.
	load.SetPhase("rolling restart")
	restartStart := time.Now()
	for i, r := range replicas {
		svc.terminate(i)
		r.signal(sigterm)
		if code := r.wait(); code != 0 {
			t.Fatalf("replica %d: exit code %d after SIGTERM, want 0", i, code)
		}
		r.start(t)
		svc.waitReady(t, i)
		waitAnswered(t, load, "rolling restart", load.Answered("rolling restart")+50)
	}
	restart := time.Since(restartStart)
	load.SetPhase("after the restart")
	waitAnswered(t, load, "after the restart", 200)
	answers := load.Stop()
	for _, r := range replicas {
		r.signal(sigterm)
		if code := r.wait(); code != 0 {
			t.Errorf("%s: exit code %d after SIGTERM, want 0", r.name, code)
		}
	}

	for _, a := range answers {
		if a.Decision == nil {
			t.Errorf("phase %s: request failed: %v", a.Phase, a.Err)
			continue
		}
		// As in TestSourceConvergence: what came back in "steady" was
		// decided before the update, what was sent after it was served
		// everywhere was decided after.
		pair := a.Decision.PolicyDigest + " " + a.Decision.RegistryDigest
		switch {
		case pair != oldPair && pair != newPair:
			t.Errorf("phase %s: decision %s from policy and registry %s: not a pair that was served", a.Phase, a.Decision.ID, pair)
		case pair == oldPair && (a.SentIn == "after the update" || a.SentIn == "rolling restart" || a.SentIn == "after the restart"):
			t.Errorf("phase %s: decision %s from the old pair, asked after every replica served the new one", a.SentIn, a.Decision.ID)
		case pair == newPair && a.Phase == "steady":
			t.Errorf("decision %s from the new pair before the update", a.Decision.ID)
		}
		checkConsistent(t, a, fixture.Digest, updated.Digest)
	}
	log := chaos.NewLog()
	var spread []string
	for _, r := range replicas {
		var runs []string
		for run, out := range r.logs {
			before := len(log.Decisions)
			// Each run logs to standard output, and chains its own.
			log.AddSeparate(fmt.Sprintf("%s run %d stdout", r.name, run+1), []byte(out.String()))
			// The service sends to every ready replica in turn: each run
			// of each replica answers a share of the load. How large a
			// share is the scheduler's (a probe that times out on a busy
			// machine takes a replica out for a while), so only an empty
			// one is a failure.
			n := len(log.Decisions) - before
			if n == 0 {
				t.Errorf("%s run %d logged no decision of %d: the service does not spread the load over the replicas", r.name, run+1, len(answers))
			}
			runs = append(runs, strconv.Itoa(n))
		}
		spread = append(spread, fmt.Sprintf("%s %s", r.name, strings.Join(runs, "+")))
	}
	v := log.Verify(chaos.ReceivedOf(answers))
	if !v.OK() {
		t.Errorf("decision logs against the answers: %s", v)
	}
	if len(log.Torn) > 0 {
		t.Errorf("torn lines in the decision logs: %v", log.Torn)
	}

	t.Logf("cluster: convergence after the ConfigMap update %s (per replica, from its swap: %s), bound %s",
		convergence.Round(time.Millisecond), roundAll(converged), convergenceBound)
	t.Logf("cluster: rolling restart of 3 replicas took %s (drain %s each); %d requests retried after a refused connection",
		restart.Round(time.Millisecond), clusterDrainDelay, svc.retried.Load())
	for _, p := range chaos.Tally(answers) {
		t.Logf("cluster %s: %d requests, %d decisions, failures: %s", p.Phase, p.Requests, p.Decisions, chaos.FailureCounts(p.Failures))
	}
	t.Logf("cluster: decisions logged per replica: %s; %s", strings.Join(spread, ", "), v)
}

func roundAll(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}
