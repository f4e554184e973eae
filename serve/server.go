// Package serve is flex-auth's decision service (CONTRACT section 6): an
// http.Handler that answers POST /v1/check with the decision of a policy
// package over a registry snapshot, writes every decision to a decision log
// before answering, and reloads the registry and policy without failing a
// request.
//
// Server is the handler. Run wires it to a listener, TLS, signals, file
// watching and graceful shutdown for the flex-auth serve command.
package serve

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/policy"
)

// MaxRequestBytes is the largest POST /v1/check body accepted.
const MaxRequestBytes = 64 << 10

// Options configure a Server, the http.Handler alone, for a caller that
// runs its own listener; Run makes one from a RunConfig.
type Options struct {
	// Source is where the registry and policy come from: the first package
	// served. It may be left zero when Packages are given.
	Source Source
	// Packages are more packages to serve, after Source.
	Packages []Source
	// DefaultPackage names the package that answers AuthZEN requests on
	// the bare /access/v1/ paths whose resource type no package declares;
	// "" is the first package.
	DefaultPackage string
	// PublicURL is the server's base URL as its clients reach it (scheme,
	// host, and a path when a proxy adds one), which the AuthZEN metadata
	// (/.well-known/authzen-configuration) names; "" leaves the metadata
	// unanswered (404), since the server cannot know it.
	PublicURL string
	// DecisionLog receives one JSON line per decision (required). When it
	// is a *LogFile, Reload reopens it; when it implements Syncer and
	// LogSync is set, every batch of lines is fsynced before the
	// decisions are answered. The Server does not close it.
	DecisionLog io.Writer
	LogSync     bool
	// LogTimeout bounds how long a decision waits for its log line to be
	// written; past it, the answer is 503. Zero is DefaultLogTimeout.
	LogTimeout time.Duration
	// LogSigner, when set, signs checkpoints of the decision log's hash
	// chain every CheckpointLines records (DefaultCheckpointLines when
	// 0), CheckpointInterval after the last one when records were
	// written since (DefaultCheckpointInterval when 0), before the log
	// file is switched on reopen, and when the log is closed.
	LogSigner          *decisionlog.Signer
	CheckpointLines    int
	CheckpointInterval time.Duration
	// ReloadTimeout bounds a reload; zero is DefaultReloadTimeout.
	ReloadTimeout time.Duration
	// Poll is how often a remote source (Source.Remote) is polled; zero
	// is DefaultPoll.
	Poll time.Duration
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Clock stamps decision log lines and load times; nil is time.Now.
	Clock func() time.Time
	// AfterLoad, when set, is called once a loaded pair serves: at the
	// end of New, and after each reload, once the old pair's memory has
	// been given back. It is where a program tunes its garbage collector
	// for the new live heap (cmd/flex-auth does); the collector is the
	// process's, so package serve leaves its settings alone.
	AfterLoad func()
}

// A Server is the decision service's http.Handler. Create it with New.
type Server struct {
	slots     []*slot
	logger    *slog.Logger
	clock     func() time.Time
	log       *decisionLog
	metrics   *metrics
	afterLoad func() // Options.AfterLoad; nil does nothing

	// set is every package as served; defaultName the default package's
	// name, "" for the first.
	set          atomic.Pointer[pkgSet]
	defaultName  string
	publicURL    string
	reloadMu     sync.Mutex // one reload at a time
	shuttingDown atomic.Bool
	// reloadTimeout bounds a reload; stuckJobs counts the goroutines of
	// reloads given up on that have not returned yet.
	reloadTimeout time.Duration
	stuckJobs     atomic.Int32

	// remote is the slot of the remote source (Options.Source.Remote),
	// or nil; poll is its poll interval; pollFailures counts the polls in
	// a row that could not reach it (the poll loop's only);
	// sourceCheckedAt is when it was last asked.
	remote          *slot
	poll            time.Duration
	pollFailures    int
	sourceCheckedAt atomic.Pointer[time.Time]
	// startWarning is why the pair served at start-up is not the
	// source's (a cached publication), or "".
	startWarning string
}

// reloadStatus is the outcome of the latest load attempt, for /healthz.
type reloadStatus struct {
	at  time.Time
	err string // "" when it succeeded
}

// New loads and validates the source and returns a Server ready to serve
// it. An error names the file and the problem; it may span several lines,
// one per problem. New logs nothing: a start-up that fails says one thing.
func New(opts Options) (*Server, error) {
	if opts.DecisionLog == nil {
		return nil, errors.New("serve: no decision log")
	}
	s := &Server{
		logger:  opts.Logger,
		clock:   opts.Clock,
		metrics: newMetrics(),

		afterLoad:     opts.AfterLoad,
		reloadTimeout: orDefault(opts.ReloadTimeout, DefaultReloadTimeout),
		poll:          orDefault(opts.Poll, DefaultPoll),
		defaultName:   opts.DefaultPackage,
	}
	if opts.Source != (Source{}) {
		s.slots = append(s.slots, &slot{source: opts.Source})
	}
	for _, src := range opts.Packages {
		s.slots = append(s.slots, &slot{source: src})
	}
	if len(s.slots) == 0 {
		return nil, errors.New("serve: no package to serve")
	}
	pub, err := publicURL(opts.PublicURL)
	if err != nil {
		return nil, err
	}
	s.publicURL = pub
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	now := s.clock().UTC()
	states := make([]*state, len(s.slots))
	for i, sl := range s.slots {
		if sl.source.Remote != nil {
			s.remote = sl
		}
		if states[i], err = s.initialLoad(sl, now); err != nil {
			return nil, err
		}
		sl.reload.Store(&reloadStatus{at: now})
	}
	set, err := newPkgSet(states, s.defaultName)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	s.use(set)
	if s.remote != nil {
		s.sourceCheckedAt.Store(&now)
		for i, sl := range s.slots {
			if sl == s.remote {
				s.metrics.updated(states[i].publication)
			}
		}
		if s.startWarning != "" {
			s.remote.reload.Store(&reloadStatus{at: now, err: s.startWarning})
		}
	}
	s.log = newDecisionLog(opts.DecisionLog, logConfig{sync: opts.LogSync, timeout: opts.LogTimeout, clock: s.clock, logger: s.logger,
		onError: func(n int) { s.metrics.logErrors.Add(float64(n)) }, onStuck: s.metrics.setLogStuck, rescue: s.rescue,
		onFlush: func(lines int) { s.metrics.logFlushes.Inc(); s.metrics.logFlushed.Add(float64(lines)) },
		signer:  opts.LogSigner, ckLines: opts.CheckpointLines, ckInterval: opts.CheckpointInterval})
	s.metrics.reg.MustRegister(chainCollector{s.log})
	if s.afterLoad != nil {
		s.afterLoad()
	}
	return s, nil
}

// logServing logs the packages being served, once the server is up.
func (s *Server) logServing() {
	set := s.set.Load()
	for i, st := range set.states {
		attrs := st.logAttrs(set)
		if s.slots[i] == s.remote {
			attrs = append(attrs, "publication", st.publication, "poll", s.poll.String())
		}
		s.logger.Info("serving "+s.slots[i].source.String(), attrs...)
	}
	if s.startWarning != "" {
		s.logger.Warn("degraded: "+s.startWarning, "err", s.startWarning)
	}
}

// logAttrs describes st for the operational log.
func (st *state) logAttrs(set *pkgSet) []any {
	attrs := []any{"policy", st.pkg.Name(), "policy_digest", st.pkg.Digest()}
	if st.snap != nil {
		attrs = append(attrs, "registry_digest", st.snap.Digest, "actors", len(st.snap.Actors))
	} else {
		attrs = append(attrs, "data_digest", st.doc.Digest(), "entities", st.doc.Len())
	}
	if set != nil && len(set.states) > 1 {
		attrs = append(attrs, "default", st == set.def, "check", st == set.check)
	}
	return attrs
}

// load reads and binds the package of sl; now is when, in UTC.
func (s *Server) load(sl *slot, now time.Time) (*state, error) {
	eval, err := sl.source.load()
	if err != nil {
		return nil, err
	}
	return newState(eval, now), nil
}

// use serves set from now on.
func (s *Server) use(set *pkgSet) {
	s.set.Store(set)
	if set.check != nil {
		s.metrics.actors.Set(float64(len(set.check.snap.Actors)))
	}
	s.metrics.setPackages(set)
}

// checkState returns the package that answers POST /v1/check, or nil.
func (s *Server) checkState() *state { return s.set.Load().check }

// ServeHTTP routes a request. Every response is JSON except /metrics; a
// panic, which no input should cause, still gets a JSON 500.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverPanic(w, r)
	switch path := routePath(r.URL); path {
	case "/v1/check":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, "POST")
			return
		}
		s.check(w, r, s.set.Load().check)
	case "/healthz":
		if s.getOnly(w, r) {
			s.healthz(w)
		}
	case "/readyz":
		if s.getOnly(w, r) {
			s.readyz(w)
		}
	case "/v1/registry":
		if s.getOnly(w, r) {
			s.registry(w, r, s.set.Load().check)
		}
	case "/metrics":
		if s.getOnly(w, r) {
			s.metrics.handler.ServeHTTP(w, r)
		}
	default:
		s.serveMore(w, r, path)
	}
}

// routePath returns the path a request is routed by: its path, decoded,
// or "" (no endpoint) when an encoded slash is in it. Go decodes
// "/v1%2Fcheck" to "/v1/check", but %2F is a character of a segment, not
// a separator (RFC 3986, 2.2), so such a path names no endpoint. Other
// percent-encodings (/v1/%63heck) name what they decode to, as RFC 3986
// 6.2.2.2 allows.
func routePath(u *url.URL) string {
	if u.RawPath != "" && (strings.Contains(u.RawPath, "%2F") || strings.Contains(u.RawPath, "%2f")) {
		return ""
	}
	return u.Path
}

func (s *Server) getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	s.methodNotAllowed(w, "GET, HEAD")
	return false
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	s.writeError(w, &apiError{http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed; use " + allow})
}

func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	// If the response was already started, this write is refused; the
	// client sees a cut response, which is not an allow.
	s.writeError(w, errInternal)
}

// An apiError is an error response. Its message is public: it says what
// was wrong with the request, never anything about the server.
type apiError struct {
	status  int
	code    string
	message string
}

var (
	errNotFound       = &apiError{http.StatusNotFound, "not_found", "no such endpoint; the API has GET /healthz, GET /readyz, POST /v1/check, GET /v1/registry, GET /metrics, the AuthZEN endpoints under /access/v1/ and GET /.well-known/authzen-configuration"}
	errNoRegistry     = &apiError{http.StatusNotFound, "not_found", "no package served here has a registry: POST /v1/check and GET /v1/registry need a package whose data is a registry snapshot; use the AuthZEN endpoints under /access/v1/"}
	errTooLarge       = &apiError{http.StatusRequestEntityTooLarge, "request_too_large", "request body is over " + strconv.Itoa(MaxRequestBytes) + " bytes"}
	errMediaType      = &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json (UTF-8)"}
	errLogUnavailable = &apiError{http.StatusServiceUnavailable, "decision_log_unavailable", "the decision could not be recorded in the decision log; no decision was made, retry later"}
	errInternal       = &apiError{http.StatusInternalServerError, "internal_error", "internal error"}
	errBodyRead       = &apiError{http.StatusBadRequest, "invalid_request", "could not read the request body"}
)

var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoSniff = []string{"nosniff"}
)

// setJSONHeaders sets the headers of a JSON response that must not be
// cached: every response but GET /v1/registry's and /metrics'.
func setJSONHeaders(h http.Header) {
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	h["X-Content-Type-Options"] = headerNoSniff
}

// writeError writes every error response: {"error": {"code", "message"}}.
func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	s.metrics.httpErrors.WithLabelValues(e.code).Inc()
	b := make([]byte, 0, 64+len(e.message))
	b = append(b, `{"error":{"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.message)
	b = append(b, "}}\n"...)
	setJSONHeaders(w.Header())
	w.WriteHeader(e.status)
	w.Write(b)
}

func invalidRequest(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_request", msg}
}

// writeJSON writes a 200-style JSON response built with encoding/json;
// for the endpoints off the hot path.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.logger.Error("encode response", "err", err)
		s.writeError(w, errInternal)
		return
	}
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Health is the body of GET /healthz. Its registry, policy and reload
// describe the package that answers POST /v1/check (the contract's
// members); packages describes every package served, and the status is
// degraded when any of them, or the decision log, is.
type Health struct {
	Status string `json:"status"` // "ok" or "degraded"
	// Registry is null when no package served has a registry: the
	// policy is then the default package.
	Registry    *RegistryHealth `json:"registry"`
	Policy      PolicyHealth    `json:"policy"`
	Reload      ReloadHealth    `json:"reload"`
	DecisionLog LogHealth       `json:"decision_log"`
	// Source is where the package the contract's members describe comes
	// from.
	Source   SourceHealth    `json:"source"`
	Packages []PackageHealth `json:"packages"`
}

// RegistryHealth describes the registry snapshot being served.
type RegistryHealth struct {
	Digest   string    `json:"digest"`
	Actors   int       `json:"actors"`
	LoadedAt time.Time `json:"loaded_at"`
}

// PolicyHealth describes the policy package being served.
type PolicyHealth struct {
	Package string `json:"package"`
	Digest  string `json:"digest"`
}

// ReloadHealth is the outcome of the latest load: the start-up load until
// the first reload. At the top level it sums up every package's: the
// latest attempt, and the first error (naming its package when several
// are served).
type ReloadHealth struct {
	LastError     *string   `json:"last_error"`
	LastAttemptAt time.Time `json:"last_attempt_at"`
}

// LogHealth says what is wrong with the decision log, if anything: writes
// failing or stuck, or the latest reopen failing. Either makes the status
// degraded. It also says where the log's hash chain stands, for an outside
// system to record (flex-auth log verify --head SEQ:HASH proves a log
// still holds it). It is an addition to the contract's /healthz members.
type LogHealth struct {
	LastError *string `json:"last_error"`
	// Seq is the seq of the last record written, Head the hash of the
	// last line (see decisionlog.Head).
	Seq  uint64 `json:"seq"`
	Head string `json:"head"`
	// Checkpoint is where the chain stood after the last signed
	// checkpoint, when the log is signed (--log-sign-key).
	Checkpoint *CheckpointHealth `json:"checkpoint,omitempty"`
}

// CheckpointHealth is the last signed checkpoint: the chain's head after
// it, and when it was written (zero before the first).
type CheckpointHealth struct {
	Seq  uint64    `json:"seq"`
	Head string    `json:"head"`
	At   time.Time `json:"at"`
	// Key is the signing key's SHA256 fingerprint.
	Key string `json:"key"`
}

// PackageHealth describes one package served: its digests, how requests
// find it, and the outcome of its latest load. A package whose latest
// reload failed is degraded, and still serves its last good state.
type PackageHealth struct {
	Package      string     `json:"package"`
	Status       string     `json:"status"` // "ok" or "degraded"
	PolicyDigest string     `json:"policy_digest"`
	Data         DataHealth `json:"data"`
	LoadedAt     time.Time  `json:"loaded_at"`
	// Default: it answers the bare /access/v1/ paths whose resource type
	// no package declares. Check: it answers POST /v1/check.
	Default       bool         `json:"default"`
	Check         bool         `json:"check"`
	ResourceTypes []string     `json:"resource_types"`
	Source        SourceHealth `json:"source"`
	Reload        ReloadHealth `json:"reload"`
}

// DataHealth describes a package's data: a registry snapshot and its
// actors, or an entities document and its entities.
type DataHealth struct {
	Kind     string `json:"kind"` // "registry" or "entities"
	Digest   string `json:"digest"`
	Actors   *int   `json:"actors,omitempty"`
	Entities *int   `json:"entities,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter) {
	set := s.set.Load()
	primary := set.primary()
	h := Health{
		Status:   "ok",
		Policy:   PolicyHealth{Package: primary.pkg.Name(), Digest: primary.pkg.Digest()},
		Packages: make([]PackageHealth, len(set.states)),
	}
	if st := set.check; st != nil {
		h.Registry = &RegistryHealth{Digest: st.snap.Digest, Actors: len(st.snap.Actors), LoadedAt: st.loadedAt}
	}
	for i, st := range set.states {
		rs := s.slots[i].reload.Load()
		ph := PackageHealth{
			Package:       st.pkg.Name(),
			Status:        "ok",
			PolicyDigest:  st.pkg.Digest(),
			LoadedAt:      st.loadedAt,
			Default:       st == set.def,
			Check:         st == set.check,
			ResourceTypes: st.pkg.ResourceTypes(),
			Source:        s.sourceHealth(s.slots[i], st),
			Reload:        ReloadHealth{LastAttemptAt: rs.at},
		}
		if st == primary {
			h.Source = ph.Source
		}
		if ph.ResourceTypes == nil {
			ph.ResourceTypes = []string{}
		}
		if st.snap != nil {
			n := len(st.snap.Actors)
			ph.Data = DataHealth{Kind: policy.DataRegistry, Digest: st.snap.Digest, Actors: &n}
		} else {
			n := st.doc.Len()
			ph.Data = DataHealth{Kind: policy.DataEntities, Digest: st.doc.Digest(), Entities: &n}
		}
		if rs.err != "" {
			ph.Status, h.Status = "degraded", "degraded"
			ph.Reload.LastError = &rs.err
			if h.Reload.LastError == nil {
				msg := rs.err
				if len(set.states) > 1 {
					msg = "package " + st.pkg.Name() + ": " + msg
				}
				h.Reload.LastError = &msg
			}
		}
		if rs.at.After(h.Reload.LastAttemptAt) {
			h.Reload.LastAttemptAt = rs.at
		}
		h.Packages[i] = ph
	}
	if e := s.log.Err(); e != "" {
		h.Status = "degraded"
		h.DecisionLog.LastError = &e
	}
	c := s.log.Chain()
	h.DecisionLog.Seq, h.DecisionLog.Head = c.Head.Seq, c.Head.Hash.String()
	if c.Signer != "" {
		h.DecisionLog.Checkpoint = &CheckpointHealth{Seq: c.Checkpoint.Seq, Head: c.Checkpoint.Hash.String(), At: c.CheckpointAt, Key: c.Signer}
	}
	s.writeJSON(w, http.StatusOK, h)
}

func (s *Server) readyz(w http.ResponseWriter) {
	if s.shuttingDown.Load() {
		s.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// registry serves the canonical snapshot of st, a registry package, with
// its digest as the ETag.
func (s *Server) registry(w http.ResponseWriter, r *http.Request, st *state) {
	if st == nil || st.snap == nil {
		s.writeError(w, errNoRegistry)
		return
	}
	h := w.Header()
	h.Set("ETag", st.etag)
	h.Set("Cache-Control", "no-cache")
	// The package the registry is served for, and its policy's digest: the
	// snapshot names the package (policy_package), not the policy served.
	h.Set("X-Flex-Auth-Package", st.pkg.Name())
	h.Set("X-Flex-Auth-Policy-Digest", st.pkg.Digest())
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 && etagMatch(inm, st.snap.Digest) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNoSniff
	h.Set("Content-Length", strconv.FormatInt(st.canonicalLen, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := st.snap.WriteCanonical(w); err != nil {
		s.logger.Debug("GET /v1/registry: client went away", "err", err)
	}
}

// etagMatch reports whether an If-None-Match header (one or more lists of
// entity tags, or "*") matches digest. Comparison is weak, as RFC 9110
// prescribes for If-None-Match, and tolerates tags sent without quotes.
func etagMatch(values []string, digest string) bool {
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			tag = strings.TrimPrefix(tag, "W/")
			if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' {
				tag = tag[1 : len(tag)-1]
			}
			if tag == digest {
				return true
			}
		}
	}
	return false
}

// jsonMediaType reports whether a Content-Type header says JSON in UTF-8:
// application/json, any case, with optional parameters, and a charset
// parameter, when present, of utf-8.
func jsonMediaType(values []string) bool {
	if len(values) != 1 {
		return false
	}
	if values[0] == "application/json" {
		return true
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != "application/json" {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}

// newDecisionID fills id with "decision:" and 16 lowercase hex digits of
// crypto/rand: 64 random bits, unique across restarts and replicas without
// coordination.
func newDecisionID(id *[25]byte) {
	var b [8]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	copy(id[:], "decision:")
	const hex = "0123456789abcdef"
	for i, c := range b {
		id[9+2*i] = hex[c>>4]
		id[10+2*i] = hex[c&0xf]
	}
}

// checkScratch holds the buffers of one check request; pooled.
type checkScratch struct {
	body  []byte
	resp  []byte
	req   checkRequest
	preq  policy.Request
	ctx   map[string]any // reused for the request's context
	dec   requestDecoder
	id    [25]byte
	entry *logEntry
}

var scratchPool = sync.Pool{New: func() any {
	sc := &checkScratch{
		body:  make([]byte, 0, 1024),
		resp:  make([]byte, 0, 512),
		ctx:   make(map[string]any, 8),
		entry: &logEntry{line: make([]byte, 0, 512), errc: make(chan error, 1)},
	}
	sc.entry.ids = [][]byte{sc.id[:]}
	return sc
}}

// check answers POST /v1/check with st, a registry package; st is nil
// when no package served has a registry.
func (s *Server) check(w http.ResponseWriter, r *http.Request, st *state) {
	start := time.Now()
	defer func() { s.metrics.checkDuration.Observe(time.Since(start).Seconds()) }()
	// One state from start to end: a reload does not change the pair a
	// request is decided and reported with.
	if st == nil || st.snap == nil {
		s.writeError(w, errNoRegistry)
		return
	}
	if !jsonMediaType(r.Header["Content-Type"]) {
		s.writeError(w, errMediaType)
		return
	}
	sc := scratchPool.Get().(*checkScratch)
	defer s.putScratch(sc)

	body, apiErr := readBody(w, r, sc.body[:0])
	sc.body = body
	if apiErr != nil {
		s.writeError(w, apiErr)
		return
	}
	if err := sc.dec.decode(body, &sc.req, st.snap, sc.ctx); err != nil {
		s.writeError(w, invalidRequest(err.Error()))
		return
	}
	req := &sc.req
	sc.preq = policy.Request{Subject: req.Subject, Action: req.Action, Resource: req.Resource, Context: req.Context}
	d := s.decide(st, &sc.preq)

	var principal string
	var ttl int64
	if d.Effect == policy.Allow {
		principal, ttl, d = s.grant(st, &sc.preq, d)
	}

	newDecisionID(&sc.id)
	e := sc.entry
	e.line = append(appendLogLine(e.line[:0], s.clock(), sc.id[:], req, d, st), '\n')
	if !s.record(w, r, e) {
		return
	}
	s.metrics.counters.inc(st.pkg.Name(), d)

	b := append(sc.resp[:0], `{"decision_id":"`...)
	b = append(b, sc.id[:]...)
	b = append(b, `","effect":`...)
	b = appendString(b, string(d.Effect))
	b = append(b, `,"reason":`...)
	b = appendString(b, d.Reason)
	b = append(b, st.tail...)
	if d.Effect == policy.Allow {
		b = append(b, `,"grant":{"principal":`...)
		b = appendString(b, principal)
		b = append(b, `,"ttl_hours":`...)
		b = strconv.AppendInt(b, ttl, 10)
		b = append(b, '}')
	}
	b = append(b, "}\n"...)
	sc.resp = b
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (s *Server) putScratch(sc *checkScratch) {
	if cap(sc.body) > 2*MaxRequestBytes || cap(sc.resp) > 16<<10 || cap(sc.entry.line) > 2*MaxRequestBytes {
		return // let an outsized buffer go
	}
	sc.req = checkRequest{}
	sc.preq = policy.Request{}
	if len(sc.ctx) > 64 {
		sc.ctx = make(map[string]any, 8) // let a big map go
	} else {
		clear(sc.ctx)
	}
	scratchPool.Put(sc)
}

// readBody reads the request body into buf, up to MaxRequestBytes; a
// request whose Content-Length says more is refused unread.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, *apiError) {
	if r.ContentLength > MaxRequestBytes {
		return buf, errTooLarge
	}
	body := http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return buf, errTooLarge
			}
			return buf, errBodyRead
		}
	}
}

// decide asks the policy, failing closed: a panic in the evaluator, which
// its contract rules out, still denies with policy_error.
func (s *Server) decide(st *state, req *policy.Request) (d policy.Decision) {
	defer s.recoverDecide(&d)
	d, err := st.eval.Evaluate(req)
	if err != nil {
		s.decideErr(err, req.Resource)
	}
	return d
}

// recoverDecide turns a panic in the evaluator into a deny.
func (s *Server) recoverDecide(d *policy.Decision) {
	if v := recover(); v != nil {
		s.logger.Error("policy evaluation panicked", "panic", v, "stack", string(debug.Stack()))
		*d = policy.Decision{Effect: policy.Deny, Reason: policy.ReasonPolicyError}
	}
}

// decideErr logs why a decision is a policy_error deny. It is called on
// an error only: errors.As takes ge's address, which puts it on the heap.
func (s *Server) decideErr(err error, resource string) {
	var ge *policy.GrantError
	if errors.As(err, &ge) {
		s.logger.Warn("policy allowed what the registry forbids; denied", "err", err, "resource", resource)
	} else {
		s.logger.Warn("policy evaluation error; denied", "err", err, "resource", resource)
	}
}

// grant returns the principal and TTL of an allow (policy.Evaluator.Grant:
// the actor's principal, and context.ttl_hours or else the actor's default
// TTL). Evaluate has already denied every allow the registry forbids; were
// one to reach here, it becomes a deny with reason policy_error, so that no
// grant the registry forbids ever leaves the server.
func (s *Server) grant(st *state, req *policy.Request, d policy.Decision) (string, int64, policy.Decision) {
	g, err := st.eval.Grant(req)
	if err != nil {
		s.logger.Error("policy allowed what the registry forbids; denied", "err", err, "resource", req.Resource, "reason", d.Reason)
		return "", 0, policy.Decision{Effect: policy.Deny, Reason: policy.ReasonPolicyError}
	}
	return g.Principal, g.TTLHours, d
}

// appendLogLine appends one decision record without its end: the
// decision log links it to the chain (decisionlog.Link), which closes the
// object and the line. It never contains request headers, and no value in
// it can break the line for any common line-oriented reader: see
// escapeLineBreaks.
func appendLogLine(b []byte, now time.Time, id []byte, req *checkRequest, d policy.Decision, st *state) []byte {
	b = append(b, `{"time":"`...)
	b = decisionlog.AppendTime(b, now)
	b = append(b, `","decision_id":"`...)
	b = append(b, id...)
	b = append(b, `","subject":`...)
	client := len(b) // from here to the context, what the client sent
	b = appendString(b, req.Subject)
	b = append(b, `,"action":`...)
	b = appendString(b, req.Action)
	b = append(b, `,"resource":`...)
	b = appendString(b, req.Resource)
	b = append(b, `,"context":`...)
	if req.rawContext != nil {
		// Without insignificant white space, so that a multi-line context
		// stays on its line; strings and numbers as the client wrote them.
		// The decoder checked the text: this cannot fail.
		b, _ = jsontext.AppendFormat(b, req.rawContext, jsontext.PreserveRawStrings(true))
	} else {
		b = append(b, "{}"...)
	}
	b = escapeLineBreaks(b, client)
	// The rest is the server's: a reason matches ^[a-z][a-z0-9_]*$, and
	// the package name and digests are checked when they load.
	b = append(b, `,"effect":`...)
	b = appendString(b, string(d.Effect))
	b = append(b, `,"reason":`...)
	b = appendString(b, d.Reason)
	return append(b, st.tail...)
}

// appendString appends s as a JSON string in its shortest form (RFC 8785):
// only '"', '\\' and control characters below U+0020 are escaped. The
// strings written here are valid UTF-8: the request decoder refuses
// anything else, and invalid bytes would be written as U+FFFD.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

// escapeLineBreaks escapes, in b[from:], every character that a common
// line-oriented reader takes as the end of a line and that JSON allows
// unescaped in a string: U+0085 (NEL; Python's str.splitlines, Java's
// and .NET's regex line ends), U+2028 and U+2029 (JavaScript and
// ECMAScript line terminators, Unicode's mandatory breaks), and with
// them every other C1 control character (U+0080 to U+009F, which
// terminals may act on) and DEL. Line feed, carriage return, vertical
// tab, form feed, U+001C to U+001E and the other C0 controls never get
// here raw: JSON requires them escaped, and appendString and the
// decoder see to it. b[from:] must be JSON text without white space
// outside strings, where these characters can only be inside strings.
func escapeLineBreaks(b []byte, from int) []byte {
	i := from + nextLineBreak(b[from:])
	if i == len(b) {
		return b // the usual case: nothing to escape, nothing allocated
	}
	rest := bytes.Clone(b[i:])
	b = b[:i]
	for len(rest) > 0 {
		j := nextLineBreak(rest)
		b = append(b, rest[:j]...)
		if j == len(rest) {
			break
		}
		r, n := utf8.DecodeRune(rest[j:])
		b = append(b, '\\', 'u', hexDigit[r>>12&0xf], hexDigit[r>>8&0xf], hexDigit[r>>4&0xf], hexDigit[r&0xf])
		rest = rest[j+n:]
	}
	return b
}

const hexDigit = "0123456789abcdef"

// nextLineBreak returns the index in b of the first character that
// escapeLineBreaks escapes, or len(b).
func nextLineBreak(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c < 0x7f:
		case c == 0x7f: // DEL
			return i
		case c == 0xc2 && i+1 < len(b) && b[i+1] <= 0x9f: // U+0080 to U+009F
			return i
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xa8 || b[i+2] == 0xa9): // U+2028, U+2029
			return i
		}
	}
	return len(b)
}
