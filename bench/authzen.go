package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coulomb/flex-auth/registry"
)

// The AuthZEN scenarios. flex-auth serves the built-in example, as in a,
// and is asked the request mix as AuthZEN evaluations:
//
//	e  one evaluation per request (POST /access/v1/evaluation)
//	f  the bare handler, decoding the same AuthZEN bodies: e's ceiling
//	g  batchSize evaluations per request (POST /access/v1/evaluations)
//
// and, with -large, the resource and subject searches of the large
// registry (largeSearch).

// batchSize is the number of evaluations of one request of scenario g.
const batchSize = 100

// azEntity and azEval are AuthZEN request members, for encoding.
type azEntity struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type azEval struct {
	Subject  azEntity       `json:"subject"`
	Action   *azEntity      `json:"action,omitempty"`
	Resource azEntity       `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`
}

// authzenEval returns a mix case as an AuthZEN evaluation of the ops-warden
// package: the subject's id, the action's name and the actor as the
// resource.
func authzenEval(c mixCase) azEval {
	return azEval{
		Subject:  azEntity{Type: "iam", ID: c.body.Subject},
		Action:   &azEntity{Name: c.body.Action},
		Resource: azEntity{Type: "actor", ID: c.body.Resource},
		Context:  c.body.Context,
	}
}

// buildAuthZENMix returns the request mix of buildMix as single AuthZEN
// evaluations. An answer must carry the decision and the reason of the
// same request on /v1/check.
func buildAuthZENMix(snap *registry.Snapshot, addr string, maxActors int) ([]request, error) {
	cases, err := mixCases(snap, maxActors)
	if err != nil {
		return nil, err
	}
	reqs := make([]request, 0, len(cases))
	for _, c := range cases {
		data, err := json.Marshal(authzenEval(c))
		if err != nil {
			return nil, err
		}
		prefix := []byte(`{"decision":` + strconv.FormatBool(c.effect == "allow") + `,"context":{"decision_id":"`)
		reason := []byte(`"reason":"` + c.reason + `"`)
		reqs = append(reqs, request{
			wire:   encodeRequest("POST", addr, "/access/v1/evaluation", "application/json", data),
			effect: c.effect, reason: c.reason,
			match: func(body []byte) bool { return bytes.HasPrefix(body, prefix) && bytes.Contains(body, reason) },
		})
	}
	return reqs, nil
}

// buildBatchMix returns the request mix of buildMix as AuthZEN batches of
// size evaluations, each with the default action: an answer must have the
// decisions of the same requests on /v1/check, in order.
func buildBatchMix(snap *registry.Snapshot, addr string, size int) ([]request, error) {
	cases, err := mixCases(snap, 0)
	if err != nil {
		return nil, err
	}
	var reqs []request
	for start := 0; start < len(cases); start += size {
		var body struct {
			Action      azEntity `json:"action"`
			Evaluations []azEval `json:"evaluations"`
		}
		body.Action = azEntity{Name: "ssh.sign"}
		want := []byte(`{"evaluations":[`)
		for i := range size {
			c := cases[(start+i)%len(cases)]
			ev := authzenEval(c)
			ev.Action = nil
			body.Evaluations = append(body.Evaluations, ev)
			if i > 0 {
				want = append(want, ',')
			}
			want = append(want, `{"decision":`+strconv.FormatBool(c.effect == "allow")+`}`...)
		}
		want = append(want, ']')
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, request{
			wire:      encodeRequest("POST", addr, "/access/v1/evaluations", "application/json", data),
			effect:    "batch",
			decisions: size,
			match:     func(answer []byte) bool { return bytes.HasPrefix(answer, want) },
		})
	}
	return reqs, nil
}

// buildSearchMix returns searches over a registry's actors (maxActors of
// them, spread evenly): for each, which actors its IAM subject may sign
// for, and which subjects may sign for it, for one hour; and for an actor
// with an extra subject, which actors that subject may sign for. An
// answer must find the actor (or its IAM subject).
func buildSearchMix(snap *registry.Snapshot, addr string, maxActors int) ([]request, error) {
	actors := snap.Actors
	n := min(len(actors), maxActors)
	ctx := map[string]any{"ttl_hours": 1}
	var reqs []request
	add := func(path string, body any, want string) error {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		w := []byte(want)
		reqs = append(reqs, request{
			wire:   encodeRequest("POST", addr, path, "application/json", data),
			effect: "found",
			match: func(answer []byte) bool {
				return bytes.HasPrefix(answer, []byte(`{"results":[`)) && bytes.Contains(answer, w)
			},
		})
		return nil
	}
	for i := range n {
		a := &actors[i*len(actors)/n]
		search := map[string]any{
			"subject": azEntity{Type: "iam", ID: registry.IAMSubject(a.Name)}, "action": azEntity{Name: "ssh.sign"},
			"resource": azEntity{Type: "actor"}, "context": ctx,
		}
		if err := add("/access/v1/search/resource", search, `"id":"`+a.Name+`"`); err != nil {
			return nil, err
		}
		subjects := map[string]any{
			"subject": azEntity{Type: "iam"}, "action": azEntity{Name: "ssh.sign"},
			"resource": azEntity{Type: "actor", ID: a.Name}, "context": ctx,
		}
		if err := add("/access/v1/search/subject", subjects, `"id":"`+registry.IAMSubject(a.Name)+`"`); err != nil {
			return nil, err
		}
		for _, sub := range a.Subjects {
			if sub != a.Name && sub != registry.IAMSubject(a.Name) {
				search["subject"] = azEntity{Type: "iam", ID: sub}
				if err := add("/access/v1/search/resource", search, `"id":"`+a.Name+`"`); err != nil {
					return nil, err
				}
			}
		}
	}
	return reqs, nil
}

// searchResult is what the large-registry search run measured.
type searchResult struct {
	Actors   int     `json:"actors"`
	Conns    int     `json:"conns"`
	Seconds  float64 `json:"seconds"`
	Searches int64   `json:"searches"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	Max      float64 `json:"max_us"`
	Errors   int64   `json:"errors"`
	Answered int64   `json:"answered"`
	LogLines int64   `json:"log_lines"`
	First    string  `json:"first_error,omitempty"`
}

// searchConns is the connections of the search run: searches are asked
// now and then by an operator or a portal, not by every signature.
const searchConns = 4

// largeSearch serves a generated registry of b.LargeActors actors and
// times AuthZEN searches over it (buildSearchMix), closed loop on
// searchConns connections; every answer must find what it looks for, and
// every result answered must be in the decision log.
func (b *bench) largeSearch(ctx context.Context) (*searchResult, error) {
	pkg, err := policyPackageName(b.Policy)
	if err != nil {
		return nil, err
	}
	regFile := filepath.Join(b.dir, "large-registry.json")
	logFile := filepath.Join(b.dir, "decisions-search.log")
	os.Remove(logFile)
	snap := largeSnapshot(b.LargeActors, pkg, "")
	if err := writeFileAtomic(regFile, snap.Canonical()); err != nil {
		return nil, err
	}
	mix, err := buildSearchMix(snap, "127.0.0.1", largeMixActors)
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, "flex-auth (search)", []string{
		b.Bin, "serve", "--addr", "{addr}", "--registry", regFile, "--policy", b.Policy, "--log", logFile,
	}, nil)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	l := &load{addr: srv.addr, requests: mix, conns: searchConns, warmup: b.Warmup, duration: b.Duration, check: true}
	lr, err := l.run(ctx)
	if err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	res := &searchResult{
		Actors: b.LargeActors, Conns: searchConns, Seconds: lr.window.Seconds(), Searches: lr.ok, RPS: lr.rps(),
		P50: us(lr.latency.percentile(0.50)), P99: us(lr.latency.percentile(0.99)), Max: us(time.Duration(lr.latency.max)),
		Errors: lr.errsTotal, Answered: lr.okTotal, First: lr.firstError(),
	}
	if res.LogLines, err = countLines(logFile); err != nil {
		return nil, err
	}
	// Every search answered finds at least one result, each a decision.
	if res.LogLines < res.Answered {
		return nil, fmt.Errorf("search: %d searches answered but only %d lines in %s", res.Answered, res.LogLines, logFile)
	}
	os.Remove(logFile)
	return res, nil
}
