package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coulomb/flex-auth/source"
)

// DefaultPoll is how often a remote source is asked whether it has a new
// pair: with ten replicas, twenty conditional requests a minute to the
// registry, and a new publication served everywhere within half a minute.
const DefaultPoll = 30 * time.Second

// maxPollBackoff bounds the wait between polls of a source that keeps
// failing: polls back off from the interval, doubling, up to eight
// intervals but no more than this (unless the interval is longer).
const maxPollBackoff = 5 * time.Minute

// fetch asks sl's remote source for its pair and, when it has a new one,
// binds it: the state to serve, or nothing new, or why not.
func (s *Server) fetch(ctx context.Context, sl *slot, now time.Time, force bool) loaded {
	upd, err := sl.source.Remote.Fetch(ctx, force)
	if err != nil && ctx.Err() != nil {
		// Whatever the source was doing when the time ran out.
		err = fmt.Errorf("reload: fetching from %s: %w", sl.source.String(), stoppedFetch(ctx, s.reloadTimeout))
	}
	if err != nil || upd == nil {
		return loaded{err: err}
	}
	eval, err := bindPair(upd.Snapshot, upd.Package, upd.RegistryName, upd.PolicyName)
	if err != nil {
		if upd.Refused != nil {
			upd.Refused(err)
		}
		return loaded{err: &source.RefusedError{Err: err}}
	}
	st := newState(eval, now)
	st.publication = upd.Publication
	return loaded{st: st, upd: upd}
}

// errPollNothing is a remote source that, asked at start-up, said it
// has what is served: a bug of the source.
var errPollNothing = errors.New("the source returned no pair at start-up")

// stoppedFetch says why a fetch from a remote source stopped.
func stoppedFetch(ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("did not finish within the reload timeout (%s)", timeout)
	}
	return errors.New("interrupted by shutdown")
}

// initialLoad reads sl's package at start-up: from the files, or from the
// remote source within the reload timeout.
func (s *Server) initialLoad(sl *slot, now time.Time) (*state, error) {
	if sl.source.Remote == nil {
		return s.load(sl, now)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.reloadTimeout)
	defer cancel()
	res := s.fetch(ctx, sl, now, true)
	if res.err != nil {
		return nil, res.err
	}
	if res.st == nil {
		// Nothing is served yet, so the source cannot have what is.
		return nil, errPollNothing
	}
	if res.upd.Served != nil {
		res.upd.Served()
	}
	if w := res.upd.Warning; w != nil {
		s.startWarning = oneLine(w)
	}
	return res.st, nil
}

// pollTimer returns the timer of the first poll of a remote source, and
// its channel; nil for files.
func (s *Server) pollTimer() (*time.Timer, <-chan time.Time) {
	if s.remote == nil || s.poll <= 0 {
		return nil, nil
	}
	t := time.NewTimer(s.nextPoll(nil))
	return t, t.C
}

// nextPoll returns the wait before the next poll after one that ended
// with err. It is the interval, or after failures to reach the source
// the interval doubled for each (a source refusing what it has is not
// failing), up to maxPollBackoff; less a random fifth, so that replicas
// started together spread their polls, and a replica never waits longer
// than an interval to see a new publication of a source that answers.
func (s *Server) nextPoll(err error) time.Duration {
	if err == nil || source.IsRefused(err) {
		s.pollFailures = 0
	} else {
		s.pollFailures++
	}
	limit := max(s.poll, min(8*s.poll, maxPollBackoff))
	d := s.poll
	for i := 0; i < s.pollFailures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// SourceHealth describes where a package served comes from, in /healthz:
// the /v1/check package's at the top level, each package's in its entry.
// It is an addition to the contract's members.
type SourceHealth struct {
	// Kind is "builtin", "file" (files or a package directory), "oci"
	// or "http".
	Kind string `json:"kind"`
	// Location is the reference, the URLs (without credentials) or the
	// files.
	Location string `json:"location"`
	// Poll is the poll interval of a remote source.
	Poll string `json:"poll,omitempty"`
	// LastCheckAt is when a remote source was last asked.
	LastCheckAt *time.Time `json:"last_check_at,omitempty"`
	// Publication describes the pair served: for an OCI source its
	// reference, manifest digest, serial, revision and signer.
	Publication any `json:"publication,omitempty"`
}

// sourceHealth describes sl's source, which st came from.
func (s *Server) sourceHealth(sl *slot, st *state) SourceHealth {
	h := SourceHealth{Location: sl.source.String(), Publication: st.publication}
	switch {
	case sl.source.Remote != nil:
		h.Kind = sl.source.Remote.Kind()
		h.Poll = s.poll.String()
		h.LastCheckAt = s.sourceCheckedAt.Load()
	case sl.source.FS != nil:
		h.Kind = "builtin"
	default:
		h.Kind = "file"
	}
	return h
}
