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

// loaded is what a reload read of one package: a new state, or, from a
// remote source, nothing new (st nil, err nil).
type loaded struct {
	st  *state
	upd *source.Update
	err error
}

// Reload reads and validates every package and its data again and, for
// each one that is good, swaps it in atomically; a package that fails
// keeps its last good state serving and /healthz says degraded, and the
// other packages are not held back by it. It also reopens the decision log
// file. Requests in flight finish with the packages they started with. A
// remote source is asked again, whatever it said last. The error, when
// one or more packages failed, names each.
//
// Reload returns within the reload timeout. A reload still reading its
// files then (a file system that stopped answering) has failed; its
// goroutine is left to finish, and whatever it read is discarded, so it
// can neither block later reloads nor undo them.
func (s *Server) Reload() error { return s.reloadCtx(context.Background()) }

// reloadCtx is Reload, which also gives up when ctx ends (at shutdown).
func (s *Server) reloadCtx(ctx context.Context) error { return s.reloadSlots(ctx, nil, true, true) }

// refresh polls the remote source: it loads its pair again and serves it
// when it is good. A poll (force false) may find nothing new, which
// changes nothing but the status; force asks the source again even about
// a pair it refused. reopenLog also reopens the decision log file.
func (s *Server) refresh(ctx context.Context, force, reopenLog bool) error {
	for i, sl := range s.slots {
		if sl.source.Remote != nil {
			return s.reloadSlots(ctx, []int{i}, force, reopenLog)
		}
	}
	return nil
}

// reloadSlots reloads the packages of the slots which (all when nil), as
// Reload and refresh describe.
func (s *Server) reloadSlots(ctx context.Context, which []int, force, reopenLog bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if which == nil {
		for i := range s.slots {
			which = append(which, i)
		}
	}
	now := s.clock().UTC()
	if n := s.stuckJobs.Load(); n >= maxStuckJobs {
		return s.reloadFailedAll(now, which, fmt.Errorf("reload refused: %d earlier reloads are still blocked reading files (a file system that stopped answering?)", n), !force)
	}
	ctx, cancel := context.WithTimeout(ctx, s.reloadTimeout)
	defer cancel()

	if reopenLog && s.log.file != nil {
		reopen := startJob(func() error { return s.log.Reopen(ctx) }, nil, &s.stuckJobs)
		// Waited for last, once the packages read are swapped in: a log
		// whose file system hangs must not hold back a new registry.
		defer func() {
			if _, ok := reopen.wait(ctx, &s.stuckJobs); !ok {
				s.log.reopenFailed(fmt.Errorf("open %s: %w", s.log.file.Path(), stopped(ctx, s.reloadTimeout)))
			}
		}()
	}
	load := startJob(func() []loaded {
		// A reload holds two registries at once, and with the default
		// GC pacing the heap may double on top of that: collect first,
		// so that the new registry is built on a heap that holds only
		// the old one. For 100,000 actors this cuts the peak resident
		// size of a reload by a third.
		runtime.GC()
		res := make([]loaded, len(which))
		for k, i := range which {
			if sl := s.slots[i]; sl.source.Remote != nil {
				res[k] = s.fetch(ctx, sl, now, force)
			} else {
				res[k].st, res[k].err = s.load(sl, now)
			}
		}
		return res
	}, func([]loaded) {
		s.logger.Info("a reload given up on has finished reading; what it read is discarded")
	}, &s.stuckJobs)

	res, ok := load.wait(ctx, &s.stuckJobs)
	if !ok {
		var errs []error
		for _, i := range which {
			err := fmt.Errorf("reload: reading the packages: %w", stopped(ctx, s.reloadTimeout))
			if sl := s.slots[i]; sl.source.Remote != nil {
				s.sourceCheckedAt.Store(&now)
				s.metrics.polled(errTimeout)
				err = fmt.Errorf("reload: fetching from %s: %w", sl.source.String(), stoppedFetch(ctx, s.reloadTimeout))
			}
			errs = append(errs, s.reloadFailed(now, i, err, !force))
		}
		return errors.Join(errs...)
	}
	set := s.set.Load()
	var errs []error
	// served is what follows a package swapped in: its status, metrics
	// and log line, once the new set serves, so that /healthz never shows
	// a reload done while the state before it still answers.
	var served []func()
	for k, i := range which {
		r, sl := res[k], s.slots[i]
		remote := sl.source.Remote != nil
		if remote {
			s.sourceCheckedAt.Store(&now)
		}
		switch {
		case r.err != nil:
			if remote {
				s.metrics.polled(r.err)
			}
		case r.st == nil:
			// The remote source has what is served: all is well.
			s.metrics.polled(nil)
			sl.reload.Store(&reloadStatus{at: now})
			continue
		default:
			var next *pkgSet
			if next, r.err = set.replace(i, r.st, s.defaultName); r.err != nil {
				break
			}
			set = next
			served = append(served, func() {
				sl.reload.Store(&reloadStatus{at: now})
				s.metrics.reloaded(r.st.pkg.Name(), true)
				if upd := r.upd; upd != nil {
					s.metrics.updated(r.st.publication)
					if upd.Served != nil {
						upd.Served()
					}
					if upd.Warning != nil {
						sl.reload.Store(&reloadStatus{at: now, err: oneLine(upd.Warning)})
						s.logger.Warn("serving a pair the source did not give", "err", upd.Warning)
					}
				}
				s.logger.Info("reloaded "+sl.source.String(), append(r.st.logAttrs(nil), "publication", r.st.publication)...)
			})
			continue
		}
		errs = append(errs, s.reloadFailed(now, i, r.err, !force))
	}
	if len(served) > 0 {
		s.use(set)
		for _, f := range served {
			f()
		}
		// The old states are garbage now, once the requests in flight
		// finish: give their memory back rather than let the next
		// reload start from this high-water mark.
		debug.FreeOSMemory()
		if s.afterLoad != nil {
			s.afterLoad()
		}
	}
	return errors.Join(errs...)
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

// reloadFailed records a failed reload of slot i: its last good state
// keeps serving. With quiet, a failure with the same message as the last
// one (a poll of a source that is still down) is not logged again. The
// error it returns names the package when several are served.
func (s *Server) reloadFailed(now time.Time, i int, err error, quiet bool) error {
	sl := s.slots[i]
	msg := oneLine(err)
	prev := sl.reload.Swap(&reloadStatus{at: now, err: msg})
	old := s.set.Load().states[i]
	s.metrics.reloaded(old.pkg.Name(), false)
	if !quiet || prev == nil || prev.err != msg {
		// msg, not err: the operational log is read by those who may not
		// read the files (oneLine).
		s.logger.Error("reload failed; still serving the last good package and data", "err", msg,
			"source", sl.source.String(), "policy", old.pkg.Name(), "policy_digest", old.pkg.Digest(), "data_digest", old.eval.DataDigest())
	}
	if len(s.slots) > 1 {
		return fmt.Errorf("package %s: %w", old.pkg.Name(), err)
	}
	return err
}

// reloadFailedAll records err as the failure of every slot in which.
func (s *Server) reloadFailedAll(now time.Time, which []int, err error, quiet bool) error {
	var errs []error
	for _, i := range which {
		errs = append(errs, s.reloadFailed(now, i, err, quiet))
	}
	return errors.Join(errs...)
}

// BeginShutdown makes /readyz answer 503, so that load balancers stop
// sending new requests; everything else keeps working.
func (s *Server) BeginShutdown() { s.shuttingDown.Store(true) }

// Close writes the decision log lines still queued and stops the log
// writer, waiting at most the log timeout. Decisions requested afterwards
// are refused with 503.
func (s *Server) Close() error { return s.log.Close() }
