package serve

import (
	"net/http"
	"strconv"
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
	reg             *prometheus.Registry
	decisions       *prometheus.CounterVec
	checkDuration   prometheus.Histogram
	authzenDuration *prometheus.HistogramVec
	authzenObs      [numEndpoints]prometheus.Observer
	actors          prometheus.Gauge
	reloads         *prometheus.CounterVec
	packages        *prometheus.GaugeVec
	logErrors       prometheus.Counter
	logStuck        prometheus.Gauge
	logFlushes      prometheus.Counter
	logFlushed      prometheus.Counter
	httpErrors      *prometheus.CounterVec
	polls           *prometheus.CounterVec
	serial          prometheus.Gauge
	counters        *decisionCounters
	handler         http.Handler
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexauth_decisions_total",
			Help: "Decisions answered (POST /v1/check, and every AuthZEN evaluation, batch item and search result), by package, effect and reason.",
		}, []string{"package", "effect", "reason"}),
		checkDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flexauth_check_duration_seconds",
			Help: "Time to answer POST /v1/check, from the request to the response, including the decision log write.",
			// 50µs to about 0.8s: a decision takes tens of microseconds,
			// an fsync of the decision log milliseconds.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 15),
		}),
		authzenDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flexauth_authzen_duration_seconds",
			Help:    "Time to answer an AuthZEN request, from the request to the response, including the decision log write, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 15),
		}, []string{"endpoint"}),
		actors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flexauth_registry_actors",
			Help: "Actors in the registry snapshot of the package that answers POST /v1/check.",
		}),
		packages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flexauth_package_info",
			Help: "1 for each package served, with the digests of its policy and data, and its kind of data (registry or entities).",
		}, []string{"package", "data", "policy_digest", "data_digest"}),
		logErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flexauth_decision_log_errors_total",
			Help: "Decisions refused with 503 because their decision log line could not be written, or not within the log timeout.",
		}),
		logStuck: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flexauth_decision_log_stuck",
			Help: "1 while a decision log write has not returned for longer than the log timeout (every decision is refused with 503 meanwhile), else 0.",
		}),
		logFlushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flexauth_decision_log_flushes_total",
			Help: "Flushes of the decision log to stable storage (fdatasync, with --log-sync).",
		}),
		logFlushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flexauth_decision_log_flushed_decisions_total",
			Help: "Decisions answered after a flush of the decision log (with --log-sync): divided by flexauth_decision_log_flushes_total, the decisions a flush covers.",
		}),
		httpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexauth_http_errors_total",
			Help: "Error responses, by error code.",
		}, []string{"code"}),
	}
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexauth_reloads_total",
		Help: "Reloads of a package and its data (SIGHUP or --watch), by package and result.",
	}, []string{"package", "result"})
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexauth_source_polls_total",
		Help: "Polls of a remote source (--source, or URLs), by result: unchanged, updated, refused (it offers a pair that is not served), failed (it could not be reached).",
	}, []string{"result"})
	// Exported from the start, at 0, as the reloads are: an alert on a
	// counter's increase does not see the increase that creates it, so
	// a first failed poll would go unseen.
	for _, result := range []string{"unchanged", "updated", "refused", "failed"} {
		m.polls.WithLabelValues(result)
	}
	m.serial = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flexauth_publication_serial",
		Help: "Serial of the OCI publication being served; 0 for other sources.",
	})
	m.reg.MustRegister(m.decisions, m.checkDuration, m.authzenDuration, m.actors, m.packages, m.reloads, m.logErrors, m.logStuck, m.logFlushes, m.logFlushed, m.httpErrors, m.polls, m.serial,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.counters = newDecisionCounters(m.decisions)
	for ep := range m.authzenObs {
		m.authzenObs[ep] = m.authzenDuration.WithLabelValues(endpointNames[ep])
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// chainCollector exports where the decision log's chain stands: the seq
// of the last record as a gauge, and the head with its hash as a label of
// an info metric, so that an outside system can record it. Each head is a
// new series of the info metric: keep it out of long-term storage, or
// record the head from /healthz instead.
type chainCollector struct{ log *decisionLog }

var (
	chainSeqDesc = prometheus.NewDesc("flexauth_decision_log_seq",
		"Seq of the last record written to the decision log's hash chain.", nil, nil)
	chainHeadDesc = prometheus.NewDesc("flexauth_decision_log_head_info",
		"The decision log's chain head: the seq of the last record and the SHA-256 of the last line, as flex-auth log verify --head takes them. Always 1.", []string{"seq", "head"}, nil)
	checkpointSeqDesc = prometheus.NewDesc("flexauth_decision_log_checkpoint_seq",
		"Seq of the last signed checkpoint of the decision log (--log-sign-key); 0 before the first, and without a signing key.", nil, nil)
	checkpointTimeDesc = prometheus.NewDesc("flexauth_decision_log_checkpoint_timestamp_seconds",
		"When the last signed checkpoint of the decision log was written, in seconds since the Unix epoch; 0 before the first.", nil, nil)
)

func (c chainCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- chainSeqDesc
	ch <- chainHeadDesc
	ch <- checkpointSeqDesc
	ch <- checkpointTimeDesc
}

func (c chainCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.log.Chain()
	seq := strconv.FormatUint(st.Head.Seq, 10)
	ch <- prometheus.MustNewConstMetric(chainSeqDesc, prometheus.GaugeValue, float64(st.Head.Seq))
	ch <- prometheus.MustNewConstMetric(chainHeadDesc, prometheus.GaugeValue, 1, seq, st.Head.Hash.String())
	at := 0.0
	if !st.CheckpointAt.IsZero() {
		at = float64(st.CheckpointAt.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(checkpointSeqDesc, prometheus.GaugeValue, float64(st.Checkpoint.Seq))
	ch <- prometheus.MustNewConstMetric(checkpointTimeDesc, prometheus.GaugeValue, at)
}

// setLogStuck sets flexauth_decision_log_stuck.
func (m *metrics) setLogStuck(stuck bool) {
	if stuck {
		m.logStuck.Set(1)
	} else {
		m.logStuck.Set(0)
	}
}

// reloaded counts a reload of package name.
func (m *metrics) reloaded(name string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.reloads.WithLabelValues(name, result).Inc()
}

// setPackages sets flexauth_package_info to the packages of set.
func (m *metrics) setPackages(set *pkgSet) {
	m.packages.Reset()
	for _, st := range set.states {
		kind := policy.DataRegistry
		if st.doc != nil {
			kind = policy.DataEntities
		}
		m.packages.WithLabelValues(st.pkg.Name(), kind, st.pkg.Digest(), st.eval.DataDigest()).Set(1)
		// Exported from the start, at 0, so that an alert on their
		// increase sees the first reload.
		m.reloads.WithLabelValues(st.pkg.Name(), "success")
		m.reloads.WithLabelValues(st.pkg.Name(), "failure")
	}
}

// A decisionKey is what a decision is counted by.
type decisionKey struct {
	pkg string
	policy.Decision
}

// decisionCounters caches the decision counter of each package, effect and
// reason, so that counting a decision is a lock-free map lookup rather
// than a label hash. The map is copied on write: a package has a handful
// of reasons, and each is added once.
type decisionCounters struct {
	vec *prometheus.CounterVec
	mu  sync.Mutex // serializes writers
	m   atomic.Pointer[map[decisionKey]prometheus.Counter]
}

func newDecisionCounters(vec *prometheus.CounterVec) *decisionCounters {
	c := &decisionCounters{vec: vec}
	c.m.Store(&map[decisionKey]prometheus.Counter{})
	return c
}

func (c *decisionCounters) inc(pkg string, d policy.Decision) {
	k := decisionKey{pkg, d}
	if ctr, ok := (*c.m.Load())[k]; ok {
		ctr.Inc()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	ctr, ok := old[k]
	if !ok {
		ctr = c.vec.WithLabelValues(pkg, string(d.Effect), d.Reason)
		m := make(map[decisionKey]prometheus.Counter, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[k] = ctr
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
