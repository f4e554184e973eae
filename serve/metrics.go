package serve

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// that two servers in one process (tests) do not collide.
type metrics struct {
	reg           *prometheus.Registry
	decisions     *prometheus.CounterVec
	checkDuration prometheus.Histogram
	actors        prometheus.Gauge
	reloadOK      prometheus.Counter
	reloadFailed  prometheus.Counter
	logErrors     prometheus.Counter
	logStuck      prometheus.Gauge
	httpErrors    *prometheus.CounterVec
	polls         *prometheus.CounterVec
	serial        prometheus.Gauge
	counters      *decisionCounters
	handler       http.Handler
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexauth_decisions_total",
			Help: "Decisions answered by POST /v1/check, by effect and reason.",
		}, []string{"effect", "reason"}),
		checkDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flexauth_check_duration_seconds",
			Help: "Time to answer POST /v1/check, from the request to the response, including the decision log write.",
			// 50µs to about 0.8s: a decision takes tens of microseconds,
			// an fsync of the decision log milliseconds.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 15),
		}),
		actors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flexauth_registry_actors",
			Help: "Actors in the registry snapshot being served.",
		}),
		logErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flexauth_decision_log_errors_total",
			Help: "Decisions refused with 503 because their decision log line could not be written, or not within the log timeout.",
		}),
		logStuck: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flexauth_decision_log_stuck",
			Help: "1 while a decision log write has not returned for longer than the log timeout (every decision is refused with 503 meanwhile), else 0.",
		}),
		httpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexauth_http_errors_total",
			Help: "Error responses, by error code.",
		}, []string{"code"}),
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexauth_reloads_total",
		Help: "Reloads of the registry and policy (SIGHUP or --watch), by result.",
	}, []string{"result"})
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexauth_source_polls_total",
		Help: "Polls of a remote source (--source, or URLs), by result: unchanged, updated, refused (it offers a pair that is not served), failed (it could not be reached).",
	}, []string{"result"})
	m.serial = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flexauth_publication_serial",
		Help: "Serial of the OCI publication being served; 0 for other sources.",
	})
	m.reloadOK = reloads.WithLabelValues("success")
	m.reloadFailed = reloads.WithLabelValues("failure")
	m.reg.MustRegister(m.decisions, m.checkDuration, m.actors, reloads, m.logErrors, m.logStuck, m.httpErrors, m.polls, m.serial,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.counters = newDecisionCounters(m.decisions)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// setLogStuck sets flexauth_decision_log_stuck.
func (m *metrics) setLogStuck(stuck bool) {
	if stuck {
		m.logStuck.Set(1)
	} else {
		m.logStuck.Set(0)
	}
}

// decisionCounters caches the decision counter of each effect and reason,
// so that counting a decision is a lock-free map lookup rather than a label
// hash. The map is copied on write: a package has a handful of reasons, and
// each is added once.
type decisionCounters struct {
	vec *prometheus.CounterVec
	mu  sync.Mutex // serializes writers
	m   atomic.Pointer[map[policy.Decision]prometheus.Counter]
}

func newDecisionCounters(vec *prometheus.CounterVec) *decisionCounters {
	c := &decisionCounters{vec: vec}
	c.m.Store(&map[policy.Decision]prometheus.Counter{})
	return c
}

func (c *decisionCounters) inc(d policy.Decision) {
	if ctr, ok := (*c.m.Load())[d]; ok {
		ctr.Inc()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	ctr, ok := old[d]
	if !ok {
		ctr = c.vec.WithLabelValues(string(d.Effect), d.Reason)
		m := make(map[policy.Decision]prometheus.Counter, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[d] = ctr
		c.m.Store(&m)
	}
	ctr.Inc()
}

// polled counts a poll of a remote source that found nothing new (err
// nil) or failed.
func (m *metrics) polled(err error) {
	switch {
	case err == nil:
		m.polls.WithLabelValues("unchanged").Inc()
	case source.IsRefused(err):
		m.polls.WithLabelValues("refused").Inc()
	default:
		m.polls.WithLabelValues("failed").Inc()
	}
}

// updated counts a poll that brought a new pair, described by pub.
func (m *metrics) updated(pub any) {
	m.polls.WithLabelValues("updated").Inc()
	if p, ok := pub.(source.PublicationInfo); ok {
		m.serial.Set(float64(p.Serial))
	}
}
