package serve

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
)

// An endpoint is one of the AuthZEN Authorization API's.
type endpoint int

const (
	epEvaluation endpoint = iota
	epEvaluations
	epSearchSubject
	epSearchResource
	epSearchAction
	numEndpoints
)

// endpointPaths are the endpoints' default paths under the base URL;
// endpointNames name them in the decision log and the metrics.
var (
	endpointPaths = [numEndpoints]string{"/access/v1/evaluation", "/access/v1/evaluations",
		"/access/v1/search/subject", "/access/v1/search/resource", "/access/v1/search/action"}
	endpointNames = [numEndpoints]string{"evaluation", "evaluations", "search/subject", "search/resource", "search/action"}
)

// metadataPath is where the PDP metadata is published (RFC 8615).
const metadataPath = "/.well-known/authzen-configuration"

// The AuthZEN errors besides those of /v1/check. The specification answers
// a body that is not JSON with 400, not 415.
var (
	errAZMediaType = &apiError{http.StatusBadRequest, "invalid_request", "Content-Type must be application/json (UTF-8)"}
	errAZExpanded  = &apiError{http.StatusRequestEntityTooLarge, "request_too_large",
		"the evaluations of this request, with their defaults filled in, are over " + strconv.Itoa(MaxExpandedBytes) + " bytes: send fewer evaluations per request"}
	errNoMetadata = &apiError{http.StatusNotFound, "not_found",
		"this server does not know its public URL, which the AuthZEN metadata must name: start it with --public-url"}
)

// serveMore routes the paths besides the contract's: the AuthZEN
// endpoints, the metadata, and every endpoint under a package's path,
// /PACKAGE/access/v1/..., /PACKAGE/v1/check and /PACKAGE/v1/registry,
// which address that package whatever the request says.
func (s *Server) serveMore(w http.ResponseWriter, r *http.Request, path string) {
	// One set from start to end: a reload does not change the package a
	// request is decided and reported with.
	set := s.set.Load()
	for ep, p := range endpointPaths {
		if path == p {
			s.authzen(w, r, endpoint(ep), set, nil)
			return
		}
	}
	if path == metadataPath {
		s.metadata(w, r, "")
		return
	}
	if name, ok := strings.CutPrefix(path, metadataPath+"/"); ok && set.byName[name] != nil {
		s.metadata(w, r, name)
		return
	}
	if rest, ok := strings.CutPrefix(path, "/"); ok {
		for ep, p := range endpointPaths {
			if name, ok := strings.CutSuffix(rest, p); ok && set.byName[name] != nil {
				s.authzen(w, r, endpoint(ep), set, set.byName[name])
				return
			}
		}
		if name, ok := strings.CutSuffix(rest, "/v1/check"); ok && set.byName[name] != nil {
			if r.Method != http.MethodPost {
				s.methodNotAllowed(w, "POST")
				return
			}
			s.check(w, r, set.byName[name])
			return
		}
		if name, ok := strings.CutSuffix(rest, "/v1/registry"); ok && set.byName[name] != nil {
			if s.getOnly(w, r) {
				s.registry(w, r, set.byName[name])
			}
			return
		}
	}
	echoRequestID(w, r)
	s.writeError(w, errNotFound)
}

// echoRequestID answers with the request's X-Request-ID, as the AuthZEN
// binding asks.
func echoRequestID(w http.ResponseWriter, r *http.Request) {
	if v := r.Header["X-Request-Id"]; len(v) > 0 {
		w.Header()["X-Request-Id"] = v[:1]
	}
}

// publicURL checks the server's public base URL: http or https, a host,
// no query or fragment; a trailing slash is dropped. "" stays "".
func publicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := parseURL(s)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(u, "/"), nil
}

// metadata answers GET /.well-known/authzen-configuration (name "") and
// /.well-known/authzen-configuration/PACKAGE, whose policy decision point
// is the public URL with /PACKAGE: its endpoints address that package.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request, name string) {
	echoRequestID(w, r)
	if !s.getOnly(w, r) {
		return
	}
	if s.publicURL == "" {
		s.writeError(w, errNoMetadata)
		return
	}
	base := s.publicURL
	if name != "" {
		base += "/" + name
	}
	b := append(make([]byte, 0, 512), `{"policy_decision_point":`...)
	b = appendString(b, base)
	for ep, key := range [numEndpoints]string{"access_evaluation_endpoint", "access_evaluations_endpoint",
		"search_subject_endpoint", "search_resource_endpoint", "search_action_endpoint"} {
		b = append(b, ',')
		b = appendString(b, key)
		b = append(b, ':')
		b = appendString(b, base+endpointPaths[ep])
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNoSniff
	// The endpoints change only when the server restarts with other
	// flags.
	h.Set("Cache-Control", "max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// azScratch holds the buffers of one AuthZEN request; pooled.
type azScratch struct {
	body    []byte
	resp    []byte
	req     azRequest
	dec     azDecoder
	ctx     map[string]any // reused for the top-level context
	acc     policy.Access
	preq    policy.Request
	entry   *logEntry
	ids     []byte // the decision ids, decisionIDLen bytes each
	results []azResult
}

// decisionIDLen is the length of a decision id: "decision:" and 16 hex
// digits.
const decisionIDLen = 25

// An azResult is the outcome of one evaluation of a request: a decision
// (with its package, id and grant), or the problem that kept it from
// being one.
type azResult struct {
	st        *state
	d         policy.Decision
	principal string // a registry package's grant, on an allow
	ttl       int64
	id        []byte
	problem   string
	candidate string // a search result
}

var azPool = sync.Pool{New: func() any {
	return &azScratch{
		body:  make([]byte, 0, 1024),
		resp:  make([]byte, 0, 512),
		ctx:   make(map[string]any, 8),
		entry: &logEntry{line: make([]byte, 0, 1024), errc: make(chan error, 1)},
		ids:   make([]byte, 0, 4*decisionIDLen),
	}
}}

// keptEvaluations bounds the evaluations a pooled scratch keeps room for:
// a batch of a few hundred reuses it, a larger one lets it go.
const keptEvaluations = 256

func (s *Server) putAZScratch(sc *azScratch) {
	if cap(sc.body) > 2*MaxRequestBytes || cap(sc.resp) > 64<<10 || cap(sc.entry.line) > 4*MaxRequestBytes ||
		cap(sc.req.evaluations) > keptEvaluations || cap(sc.results) > keptEvaluations || cap(sc.ids) > keptEvaluations*decisionIDLen {
		return // let an outsized buffer go
	}
	clear(sc.req.evaluations[:cap(sc.req.evaluations)])
	sc.req = azRequest{evaluations: sc.req.evaluations[:0]}
	clear(sc.results[:cap(sc.results)])
	sc.results = sc.results[:0]
	sc.acc, sc.preq = policy.Access{}, policy.Request{}
	clear(sc.entry.ids[:cap(sc.entry.ids)])
	sc.entry.ids = sc.entry.ids[:0]
	if len(sc.ctx) > 64 {
		sc.ctx = make(map[string]any, 8)
	} else {
		clear(sc.ctx)
	}
	azPool.Put(sc)
}

// newID appends a new decision id to sc.ids and returns it. sc.ids holds
// room enough for every id of the request (reserveIDs), so that the ids
// returned before stay where they are.
func (sc *azScratch) newID() []byte {
	var id [decisionIDLen]byte
	newDecisionID(&id)
	n := len(sc.ids)
	sc.ids = append(sc.ids, id[:]...)
	return sc.ids[n : n+decisionIDLen : n+decisionIDLen]
}

// reserveIDs makes room in sc.ids for n decision ids.
func (sc *azScratch) reserveIDs(n int) {
	if cap(sc.ids) < n*decisionIDLen {
		sc.ids = make([]byte, 0, n*decisionIDLen)
	}
	sc.ids = sc.ids[:0]
}

// authzen answers the AuthZEN endpoint ep with the packages of set. pin
// is the package the path addresses; nil routes each evaluation by its
// resource type.
func (s *Server) authzen(w http.ResponseWriter, r *http.Request, ep endpoint, set *pkgSet, pin *state) {
	start := time.Now()
	defer func() { s.metrics.authzenObs[ep].Observe(time.Since(start).Seconds()) }()
	echoRequestID(w, r)
	if r.Method != http.MethodPost {
		s.methodNotAllowed(w, "POST")
		return
	}
	if !jsonMediaType(r.Header["Content-Type"]) {
		s.writeError(w, errAZMediaType)
		return
	}
	sc := azPool.Get().(*azScratch)
	defer s.putAZScratch(sc)
	body, apiErr := readBody(w, r, sc.body[:0])
	sc.body = body
	if apiErr != nil {
		s.writeError(w, apiErr)
		return
	}
	var snap *registry.Snapshot
	if set.check != nil {
		snap = set.check.snap
	}
	if err := sc.dec.decode(body, &sc.req, snap, sc.ctx); err != nil {
		s.writeError(w, invalidRequest(err.Error()))
		return
	}
	switch ep {
	case epEvaluation:
		s.evaluate(w, r, set, pin, sc, ep)
	case epEvaluations:
		if len(sc.req.evaluations) > 0 {
			s.evaluateBatch(w, r, set, pin, sc)
		} else {
			s.evaluate(w, r, set, pin, sc, ep)
		}
	default:
		s.search(w, r, set, pin, sc, ep)
	}
}

// need returns what keeps e from being a complete input entity of kind
// what ("subject"): a value of the wrong kind, or a missing type and id
// (name, for an action); with typeOnly, the id is not needed (the entity
// searched for).
func need(e *azEntity, what string, action, typeOnly bool) string {
	switch {
	case e.problem != "":
		return e.problem
	case !e.given:
		return strconv.Quote(what) + " is required"
	case action && !e.hasID:
		return what + ".name is required"
	case action && e.id == "":
		return what + ".name must not be empty"
	case action:
		return ""
	case !e.hasType:
		return what + ".type is required"
	case e.typ == "":
		return what + ".type must not be empty"
	case typeOnly:
		return ""
	case !e.hasID:
		return what + ".id is required"
	case e.id == "":
		return what + ".id must not be empty"
	}
	return ""
}

// evalProblem returns what keeps an evaluation from being decided, or "".
func evalProblem(sub, act, res *azEntity, itemProblem string) string {
	for _, p := range []string{itemProblem, need(sub, "subject", false, false), need(act, "action", true, false), need(res, "resource", false, false)} {
		if p != "" {
			return p
		}
	}
	return ""
}

// effective returns evaluation i of a batch: each of its subject, action,
// resource and context, or where it has none, the request's default.
func (req *azRequest) effective(i int) (sub, act, res *azEntity, ctx map[string]any, rawCtx []byte, problem string) {
	it := &req.evaluations[i]
	pick := func(own, def *azEntity) *azEntity {
		if own.given {
			return own
		}
		return def
	}
	sub, act, res = pick(&it.subject, &req.subject), pick(&it.action, &req.action), pick(&it.resource, &req.resource)
	ctx, rawCtx, problem = req.context, req.rawContext, it.problem
	if it.rawContext != nil || it.problem != "" {
		ctx, rawCtx = it.context, it.rawContext
	}
	return sub, act, res, ctx, rawCtx, problem
}

// decideEval decides one evaluation with st. A registry package decides
// it as it decides the same request on /v1/check (policy.Access.Request),
// with its grant on an allow.
func (s *Server) decideEval(st *state, sc *azScratch, sub, act, res *azEntity, ctx map[string]any) azResult {
	acc := &sc.acc
	*acc = policy.Access{
		Subject:  policy.Entity{Type: sub.typ, ID: sub.id, Properties: sub.props},
		Action:   policy.Action{Name: act.id, Properties: act.props},
		Resource: policy.Entity{Type: res.typ, ID: res.id, Properties: res.props},
		Context:  ctx,
	}
	out := azResult{st: st}
	if st.snap != nil {
		sc.preq = acc.Request()
		out.d = s.decide(st, &sc.preq)
		if out.d.Effect == policy.Allow {
			out.principal, out.ttl, out.d = s.grant(st, &sc.preq, out.d)
		}
		return out
	}
	out.d = s.access(st, acc)
	return out
}

// access decides an AuthZEN model request, failing closed.
func (s *Server) access(st *state, acc *policy.Access) (d policy.Decision) {
	defer s.recoverDecide(&d)
	d, err := st.eval.Access(acc)
	if err != nil {
		s.decideErr(err, acc.Resource.ID)
	}
	return d
}

// evaluate answers one evaluation: the Access Evaluation API, and the
// Access Evaluations API without evaluations.
func (s *Server) evaluate(w http.ResponseWriter, r *http.Request, set *pkgSet, pin *state, sc *azScratch, ep endpoint) {
	ev := &sc.req.azEval
	if p := evalProblem(&ev.subject, &ev.action, &ev.resource, ev.problem); p != "" {
		s.writeError(w, invalidRequest(p))
		return
	}
	st := set.route(pin, ev.resource.typ)
	out := s.decideEval(st, sc, &ev.subject, &ev.action, &ev.resource, ev.context)
	sc.reserveIDs(1)
	out.id = sc.newID()
	e := sc.entry
	e.ids = append(e.ids[:0], out.id)
	e.line = append(appendAccessLine(e.line[:0], s.clock(), out.id, ep, nil, -1, &ev.subject, &ev.action, &ev.resource, ev.rawContext, out.d, st), '\n')
	if !s.record(w, r, e) {
		return
	}
	s.metrics.counters.inc(st.pkg.Name(), out.d)
	b := append(sc.resp[:0], `{"decision":`...)
	b = strconv.AppendBool(b, out.d.Effect == policy.Allow)
	b = append(b, `,"context":`...)
	b = appendResultContext(b, &out)
	b = append(b, "}\n"...)
	sc.resp = b
	writeAZ(w, b)
}

// writeAZ writes a 200 answer.
func writeAZ(w http.ResponseWriter, b []byte) {
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// appendResultContext appends what flex-auth says of one evaluation: its
// decision id and reason (and a registry package's grant), or the error
// that kept it from being decided.
func appendResultContext(b []byte, out *azResult) []byte {
	if out.problem != "" {
		return appendItemError(b, out.problem)
	}
	b = append(b, `{"decision_id":"`...)
	b = append(b, out.id...)
	b = append(b, `","reason":`...)
	b = appendString(b, out.d.Reason)
	if out.d.Effect == policy.Allow && out.st.snap != nil {
		b = append(b, `,"grant":{"principal":`...)
		b = appendString(b, out.principal)
		b = append(b, `,"ttl_hours":`...)
		b = strconv.AppendInt(b, out.ttl, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendItemError appends the context of an evaluation that could not be
// decided, as the specification shows errors in a batch.
func appendItemError(b []byte, problem string) []byte {
	b = append(b, `{"error":{"status":400,"message":`...)
	b = appendString(b, problem)
	return append(b, "}}"...)
}

// evaluateBatch answers the Access Evaluations API with evaluations: each
// one decided in order, an invalid one answered with an error and a false
// decision, and the request's evaluation semantic applied. Every decision
// is logged, all of them in one group, before anything is answered.
func (s *Server) evaluateBatch(w http.ResponseWriter, r *http.Request, set *pkgSet, pin *state, sc *azScratch) {
	req := &sc.req
	n := len(req.evaluations)
	total := 0
	for i := range n {
		sub, act, res, _, rawCtx, _ := req.effective(i)
		total += len(sub.raw) + len(act.raw) + len(res.raw) + len(rawCtx)
	}
	if total > MaxExpandedBytes {
		s.writeError(w, errAZExpanded)
		return
	}
	sc.reserveIDs(n)
	batch := newBatchID()
	now := s.clock()
	e := sc.entry
	e.line, e.ids = e.line[:0], e.ids[:0]
	results := sc.results[:0]
	for i := range n {
		sub, act, res, ctx, rawCtx, problem := req.effective(i)
		if p := evalProblem(sub, act, res, problem); p != "" {
			results = append(results, azResult{problem: p})
			if req.semantic == denyOnFirstDeny {
				break
			}
			continue
		}
		st := set.route(pin, res.typ)
		out := s.decideEval(st, sc, sub, act, res, ctx)
		out.id = sc.newID()
		e.ids = append(e.ids, out.id)
		e.line = append(appendAccessLine(e.line, now, out.id, epEvaluations, batch[:], i, sub, act, res, rawCtx, out.d, st), '\n')
		results = append(results, out)
		allow := out.d.Effect == policy.Allow
		if req.semantic == denyOnFirstDeny && !allow || req.semantic == permitOnFirstPermit && allow {
			break
		}
	}
	sc.results = results
	if len(e.ids) > 0 && !s.record(w, r, e) {
		return
	}
	b := append(sc.resp[:0], `{"evaluations":[`...)
	for i := range results {
		out := &results[i]
		if i > 0 {
			b = append(b, ',')
		}
		if out.problem != "" {
			b = append(b, `{"decision":false,"context":`...)
			b = appendItemError(b, out.problem)
			b = append(b, '}')
			continue
		}
		s.metrics.counters.inc(out.st.pkg.Name(), out.d)
		b = append(b, `{"decision":`...)
		b = strconv.AppendBool(b, out.d.Effect == policy.Allow)
		b = append(b, '}')
	}
	b = appendDecisions(b, results)
	sc.resp = b
	writeAZ(w, b)
}

// appendDecisions appends the end of a batch or search answer: its
// context, with flex-auth's account of each evaluation, in order.
func appendDecisions(b []byte, results []azResult) []byte {
	b = append(b, `],"context":{"decisions":[`...)
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendResultContext(b, &results[i])
	}
	return append(b, "]}}\n"...)
}

// newBatchID returns "batch:" and 16 lowercase hex digits of crypto/rand:
// what ties together the decision log lines of one batch or search.
func newBatchID() [22]byte {
	var id [22]byte
	var b [8]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	copy(id[:], "batch:")
	for i, c := range b {
		id[6+2*i] = hexDigit[c>>4]
		id[7+2*i] = hexDigit[c&0xf]
	}
	return id
}

// appendAccessLine appends the decision log line of one AuthZEN
// evaluation. Its members are those of a /v1/check line, written by
// appendLogLine (subject, action and resource being the subject's id, the
// action's name and the resource's id), so that every decision line reads
// the same, then
// "authzen": the endpoint, the batch and the index of the evaluation in
// it (for a batch or a search; index -1 leaves them out), and the
// entities as decided, with the properties they were sent with. For a
// registry package, everything before "authzen" is what the same request
// on /v1/check logs. Like appendLogLine, it appends the record without its
// end, which the decision log's chain closes.
func appendAccessLine(b []byte, now time.Time, id []byte, ep endpoint, batch []byte, index int,
	sub, act, res *azEntity, rawCtx []byte, d policy.Decision, st *state) []byte {
	b = appendLogLine(b, now, id, &checkRequest{Subject: sub.id, Action: act.id, Resource: res.id, rawContext: rawCtx}, d, st)
	b = append(b, `,"authzen":{"endpoint":`...)
	b = appendString(b, endpointNames[ep])
	if index >= 0 {
		b = append(b, `,"batch":"`...)
		b = append(b, batch...)
		b = append(b, `","index":`...)
		b = strconv.AppendInt(b, int64(index), 10)
	}
	client := len(b)
	b = append(b, `,"subject":`...)
	b = appendEntity(b, sub, false)
	b = append(b, `,"action":`...)
	b = appendEntity(b, act, true)
	b = append(b, `,"resource":`...)
	b = appendEntity(b, res, false)
	b = escapeLineBreaks(b, client)
	return append(b, '}')
}

// appendEntity appends an entity as decided: type, id and properties (an
// action: name and properties).
func appendEntity(b []byte, e *azEntity, action bool) []byte {
	if action {
		b = append(b, `{"name":`...)
	} else {
		b = append(b, `{"type":`...)
		b = appendString(b, e.typ)
		b = append(b, `,"id":`...)
	}
	b = appendString(b, e.id)
	if e.rawProps != nil {
		b = append(b, `,"properties":`...)
		b = appendRaw(b, e.rawProps)
	}
	return append(b, '}')
}

// appendRaw appends an object as the client sent it, without
// insignificant white space, so that it stays on its line; strings and
// numbers as the client wrote them.
func appendRaw(b, raw []byte) []byte {
	// The decoder checked the text: this cannot fail.
	b, _ = jsontext.AppendFormat(b, raw, jsontext.PreserveRawStrings(true))
	return b
}

// canonical returns raw in its RFC 8785 form, for comparing requests
// (page tokens) by their values rather than their text.
func canonical(raw []byte) []byte {
	if raw == nil {
		return nil
	}
	v := jsontext.Value(bytes.Clone(raw))
	if err := v.Canonicalize(); err != nil {
		return raw
	}
	return v
}
