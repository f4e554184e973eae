package serve

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coulomb/flex-auth/source"
)

// DefaultReloadTimeout bounds a reload: reading and checking the registry
// and policy, and reopening the decision log. A reload of 100,000 actors
// takes a fraction of a second; one that takes this long is blocked on a
// file system that stopped answering.
const DefaultReloadTimeout = 30 * time.Second

// maxStuckJobs bounds the goroutines of reloads given up on that are
// still blocked (reading a file on a hung mount): past it, a reload is
// refused at once rather than add one more.
const maxStuckJobs = 4

// A job runs a function that may block for good (it reads files) in a
// goroutine of its own, so that its caller can stop waiting. A job given
// up on hands its result to discard when the function finally returns,
// and counts as stuck until then.
type job[T any] struct {
	mu        sync.Mutex
	done      chan struct{}
	res       T
	abandoned bool
}

func startJob[T any](f func() T, discard func(T), stuck *atomic.Int32) *job[T] {
	j := &job[T]{done: make(chan struct{})}
	go func() {
		res := f()
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.abandoned {
			stuck.Add(-1)
			if discard != nil {
				discard(res)
			}
			return
		}
		j.res = res
		close(j.done)
	}()
	return j
}

// wait returns the job's result, or false when ctx ends first: the job is
// then given up on.
func (j *job[T]) wait(ctx context.Context, stuck *atomic.Int32) (T, bool) {
	select {
	case <-j.done: // even when ctx has ended: it returned in time
		return j.res, true
	default:
	}
	select {
	case <-j.done:
		return j.res, true
	case <-ctx.Done():
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.done: // it returned meanwhile
		return j.res, true
	default:
	}
	j.abandoned = true
	stuck.Add(1)
	var zero T
	return zero, false
}

// loaded is what a reload read: a new state, or, from a remote source,
// nothing new (st nil, err nil).
type loaded struct {
	st  *state
	upd *source.Update
	err error
}

// Reload reads and validates the registry and policy again and, when both
// are good and belong together, swaps them in atomically; otherwise the
// last good pair keeps serving and /healthz says degraded. It also reopens
// the decision log file. Requests in flight finish with the pair they
// started with. A remote source is asked again, whatever it said last.
//
// Reload returns within the reload timeout. A reload still reading its
// files then (a file system that stopped answering) has failed; its
// goroutine is left to finish, and whatever it read is discarded, so it
// can neither block later reloads nor undo them.
func (s *Server) Reload() error { return s.reloadCtx(context.Background()) }

// reloadCtx is Reload, which also gives up when ctx ends (at shutdown).
func (s *Server) reloadCtx(ctx context.Context) error { return s.refresh(ctx, true, true) }

// refresh loads the pair again and serves it when it is good. A poll of
// a remote source (force false) may find nothing new, which changes
// nothing but the status; force asks a remote source again even about a
// pair it refused. reopen also reopens the decision log file.
func (s *Server) refresh(ctx context.Context, force, reopenLog bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	now := s.clock().UTC()
	if n := s.stuckJobs.Load(); n >= maxStuckJobs {
		return s.reloadFailed(now, fmt.Errorf("reload refused: %d earlier reloads are still blocked reading files (a file system that stopped answering?)", n), !force)
	}
	ctx, cancel := context.WithTimeout(ctx, s.reloadTimeout)
	defer cancel()

	var reopen *job[error]
	if reopenLog && s.log.file != nil {
		reopen = startJob(func() error { return s.log.Reopen(ctx) }, nil, &s.stuckJobs)
	}
	load := startJob(func() loaded {
		if s.source.Remote != nil {
			return s.fetch(ctx, now, force)
		}
		// A reload holds two registries at once, and with the default
		// GC pacing the heap may double on top of that: collect first,
		// so that the new registry is built on a heap that holds only
		// the old one. For 100,000 actors this cuts the peak resident
		// size of a reload by a third.
		runtime.GC()
		st, err := s.load(now)
		return loaded{st: st, err: err}
	}, func(loaded) {
		s.logger.Info("a reload given up on has finished reading; what it read is discarded")
	}, &s.stuckJobs)

	if reopen != nil {
		if _, ok := reopen.wait(ctx, &s.stuckJobs); !ok {
			s.log.reopenFailed(fmt.Errorf("open %s: %w", s.log.file.Path(), stopped(ctx, s.reloadTimeout)))
		}
	}
	res, ok := load.wait(ctx, &s.stuckJobs)
	if s.source.Remote != nil {
		s.sourceCheckedAt.Store(&now)
	}
	if !ok {
		if s.source.Remote != nil {
			s.metrics.polled(errTimeout)
			return s.reloadFailed(now, fmt.Errorf("reload: fetching from %s: %w", s.source.String(), stoppedFetch(ctx, s.reloadTimeout)), !force)
		}
		return s.reloadFailed(now, fmt.Errorf("reload: reading the registry and policy: %w", stopped(ctx, s.reloadTimeout)), !force)
	}
	if res.err != nil {
		if s.source.Remote != nil {
			s.metrics.polled(res.err)
		}
		return s.reloadFailed(now, res.err, !force)
	}
	if res.st == nil {
		// The remote source has what is served: all is well.
		s.metrics.polled(nil)
		s.reload.Store(&reloadStatus{at: now})
		return nil
	}
	st := res.st
	s.use(st, now)
	s.metrics.reloadOK.Inc()
	if upd := res.upd; upd != nil {
		s.metrics.updated(st.publication)
		if upd.Served != nil {
			upd.Served()
		}
		if upd.Warning != nil {
			s.reload.Store(&reloadStatus{at: now, err: oneLine(upd.Warning)})
			s.logger.Warn("serving a pair the source did not give", "err", upd.Warning)
		}
	}
	s.logger.Info("reloaded registry and policy", "policy", st.pkg.Name(), "policy_digest", st.pkg.Digest(),
		"registry_digest", st.snap.Digest, "actors", len(st.snap.Actors), "source", s.source.String(), "publication", st.publication)
	// The old pair is garbage now, once the requests in flight finish:
	// give its memory back rather than let the next reload start from
	// this high-water mark.
	debug.FreeOSMemory()
	if s.afterLoad != nil {
		s.afterLoad()
	}
	return nil
}

// errTimeout counts a poll given up on as a failure.
var errTimeout = errors.New("timeout")

// stopped says why a reload stopped waiting.
func stopped(ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("did not finish within the reload timeout (%s); a file system that stopped answering?", timeout)
	}
	return errors.New("interrupted by shutdown")
}

// reloadFailed records a failed reload: the last good pair keeps serving.
// With quiet, a failure with the same message as the last one (a poll
// of a source that is still down) is not logged again.
func (s *Server) reloadFailed(now time.Time, err error, quiet bool) error {
	msg := oneLine(err)
	prev := s.reload.Swap(&reloadStatus{at: now, err: msg})
	s.metrics.reloadFailed.Inc()
	if quiet && prev != nil && prev.err == msg {
		return err
	}
	old := s.cur.Load()
	s.logger.Error("reload failed; still serving the last good registry and policy", "err", msg,
		"policy_digest", old.pkg.Digest(), "registry_digest", old.snap.Digest)
	return err
}

// BeginShutdown makes /readyz answer 503, so that load balancers stop
// sending new requests; everything else keeps working.
func (s *Server) BeginShutdown() { s.shuttingDown.Store(true) }

// Close writes the decision log lines still queued and stops the log
// writer, waiting at most the log timeout. Decisions requested afterwards
// are refused with 503.
func (s *Server) Close() error { return s.log.Close() }
