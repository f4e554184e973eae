package serve

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/coulomb/flex-auth/policy"
)

// errToken is a page token this server did not give, or gave for another
// search.
var (
	errTokenInvalid = &apiError{http.StatusBadRequest, "invalid_request", "page.token is not a token this server gave"}
	errTokenOther   = &apiError{http.StatusBadRequest, "invalid_request",
		"page.token was given for another search: a token continues the search it came from, with the same package, subject, action, resource and context"}
	errTokenLimit = &apiError{http.StatusBadRequest, "invalid_request",
		"page.limit is not the limit of the search page.token continues: leave it out, or give the same"}
)

// searchKind returns the policy search of a search endpoint.
func searchKind(ep endpoint) policy.Search {
	switch ep {
	case epSearchSubject:
		return policy.SearchSubject
	case epSearchResource:
		return policy.SearchResource
	}
	return policy.SearchAction
}

// search answers the three Search APIs: it decides, in order, every
// candidate the package's data has for the entity searched (policy.
// Evaluator.Candidates) with the request's other entities and context, and
// answers those allowed, a page at a time. Each result is a decision,
// logged like any other (all of a page's in one group) before the answer;
// the candidates decided but not answered are not.
func (s *Server) search(w http.ResponseWriter, r *http.Request, set *pkgSet, pin *state, sc *azScratch, ep endpoint) {
	q := &sc.req.azEval
	kind := searchKind(ep)
	problems := []string{
		need(&q.subject, "subject", false, kind == policy.SearchSubject),
		need(&q.resource, "resource", false, kind == policy.SearchResource),
		q.problem,
	}
	if kind != policy.SearchAction {
		problems = append(problems, need(&q.action, "action", true, false))
	}
	for _, p := range problems {
		if p != "" {
			s.writeError(w, invalidRequest(p))
			return
		}
	}
	// The id of the entity searched for is ignored, as the specification
	// says: the searched entity is the request's with each candidate's id.
	sub, act, res := q.subject, q.action, q.resource
	searched := &sub
	switch kind {
	case policy.SearchResource:
		searched = &res
	case policy.SearchAction:
		act = azEntity{given: true, hasID: true}
		searched = &act
	}
	searched.id = ""
	st := set.route(pin, res.typ)
	query := policy.Access{
		Subject:  policy.Entity{Type: sub.typ, ID: sub.id},
		Action:   policy.Action{Name: act.id},
		Resource: policy.Entity{Type: res.typ, ID: res.id},
	}
	cands := st.eval.Candidates(kind, &query)

	// hash ties a page token to its search: it is computed only for a
	// token read or given.
	var hash [8]byte
	limit, after := DefaultSearchLimit, ""
	if p := sc.req.page; p.token != "" {
		hash = searchHash(ep, st, &sub, &act, &res, q.rawContext)
		t, err := parseToken(p.token)
		switch {
		case err != nil:
			s.writeError(w, errTokenInvalid)
			return
		case t.hash != hash:
			s.writeError(w, errTokenOther)
			return
		case p.hasLimit && p.limit != t.limit:
			s.writeError(w, errTokenLimit)
			return
		}
		limit, after = t.limit, t.after
	} else if p.hasLimit {
		limit = p.limit
	}
	from, found := slices.BinarySearch(cands, after)
	if found && after != "" {
		from++
	}

	sc.reserveIDs(min(limit, len(cands)-from))
	batch := newBatchID()
	now := s.clock()
	e := sc.entry
	e.line, e.ids = e.line[:0], e.ids[:0]
	results := sc.results[:0]
	more := false
	for _, c := range cands[from:] {
		searched.id = c
		out := s.decideEval(st, sc, &sub, &act, &res, q.context)
		if out.d.Effect != policy.Allow {
			continue
		}
		if len(results) == limit {
			more = true // decided to know there is more; not answered, not logged
			break
		}
		out.id, out.candidate = sc.newID(), c
		e.ids = append(e.ids, out.id)
		e.line = append(appendAccessLine(e.line, now, out.id, ep, batch[:], len(results), &sub, &act, &res, q.rawContext, out.d, st), '\n')
		results = append(results, out)
	}
	if more && sc.req.page.token == "" {
		searched.id = "" // the search's, not the last candidate's
		hash = searchHash(ep, st, &sub, &act, &res, q.rawContext)
	}
	sc.results = results
	if len(e.ids) > 0 && !s.record(w, r, e) {
		return
	}
	b := append(sc.resp[:0], '{')
	if sc.req.page.given || more {
		next := ""
		if more {
			last := after
			if len(results) > 0 {
				last = results[len(results)-1].candidate
			}
			next = pageToken{hash: hash, limit: limit, after: last}.String()
		}
		b = append(b, `"page":{"next_token":`...)
		b = appendString(b, next)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(len(results)), 10)
		b = append(b, "},"...)
	}
	b = append(b, `"results":[`...)
	for i := range results {
		out := &results[i]
		s.metrics.counters.inc(st.pkg.Name(), out.d)
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEntity(b, &azEntity{typ: searched.typ, id: out.candidate}, kind == policy.SearchAction)
	}
	b = appendDecisions(b, results)
	sc.resp = b
	writeAZ(w, b)
}

// A pageToken continues a search: the search it came from, by its hash,
// the page size, and the last candidate answered. Candidates are sorted,
// so the next page starts after it, whatever was added or removed since.
type pageToken struct {
	hash  [8]byte
	limit int
	after string
}

// tokenVersion is the first byte of every token this version gives.
const tokenVersion = 1

// String returns the token as the opaque string a client sends back.
func (t pageToken) String() string {
	b := make([]byte, 0, 11+len(t.after))
	b = append(b, tokenVersion)
	b = append(b, t.hash[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(t.limit))
	b = append(b, t.after...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseToken(s string) (pageToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 11 || b[0] != tokenVersion {
		return pageToken{}, errors.New("not a page token")
	}
	var t pageToken
	copy(t.hash[:], b[1:9])
	t.limit = int(binary.BigEndian.Uint16(b[9:11]))
	t.after = string(b[11:])
	if t.limit > MaxSearchLimit {
		return pageToken{}, errors.New("not a page token")
	}
	return t, nil
}

// searchHash identifies a search: the endpoint, the package, every entity
// (the searched one without its id) and the context, its JSON values
// compared as RFC 8785 has them, so that a client re-encoding the same
// request is not refused.
func searchHash(ep endpoint, st *state, sub, act, res *azEntity, rawCtx []byte) [8]byte {
	h := sha256.New()
	field := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
	}
	field([]byte(endpointNames[ep]))
	field([]byte(st.pkg.Name()))
	for _, e := range []*azEntity{sub, act, res} {
		field([]byte(e.typ))
		field([]byte(e.id))
		field(canonical(e.rawProps))
	}
	field(canonical(rawCtx))
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// parseURL checks a public base URL: absolute, http or https, with a
// host, and no query or fragment.
func parseURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", errors.New("--public-url: " + err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("--public-url " + strconv.Quote(s) + ": want an http or https URL")
	case u.Host == "":
		return "", errors.New("--public-url " + strconv.Quote(s) + ": no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil:
		return "", errors.New("--public-url " + strconv.Quote(s) + ": no query, fragment or user information")
	}
	return s, nil
}
