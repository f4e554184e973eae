package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLogClosed is returned for a decision that arrives after the decision
// log was closed at shutdown.
var ErrLogClosed = errors.New("decision log closed")

// Errors for a decision whose line was not written in time. Each is
// answered 503 decision_log_unavailable, like a failed write.
var (
	// errLogTimeout: the line was not written within the log timeout.
	errLogTimeout = errors.New("decision log: the line was not written within the log timeout")
	// errLogStuck: a write has not returned for longer than the log
	// timeout; decisions are refused at once until it does.
	errLogStuck = errors.New("decision log: a write is stuck")
	// errLogBusy: more lines wait than one write can take many times
	// over.
	errLogBusy = errors.New("decision log: too many lines waiting")
	// errRescued: the request was answered 503 by the watchdog while its
	// handler was blocked writing the log; the handler must not answer.
	errRescued = errors.New("decision log: the request was answered while its handler wrote the log")
)

// DefaultLogTimeout is how long a decision waits for its log line to be
// written before it is answered 503: well under a client's own timeout
// (flex-auth check waits 5s), so that the client hears why.
const DefaultLogTimeout = 2 * time.Second

// maxBatch bounds the bytes one group commit writes, so that one write(2)
// stays short under a flood.
const maxBatch = 1 << 20

// maxPending bounds the bytes of lines waiting for a write. Every waiting
// line belongs to a request in flight, so connections already bound it;
// this bounds it however many there are. At disk speed it is a fraction
// of a second of writing.
const maxPending = 16 << 20

// tornEnd ends a line whose write was cut short, before the next line is
// written. Whatever the fragment before it, the line is then not JSON: the
// quote either ends a string, and a backslash cannot follow, or starts
// one, and backslash-space is no escape. So even a fragment that is a
// whole object, cut just before its newline, is never read as a decision,
// which nobody was given.
const tornEnd = `"\ <- cut short: not a decision` + "\n"

// notGivenWhy is the "why" of a not_given record.
const notGivenWhy = "written, but the request was answered 503 decision_log_unavailable"

// A logEntry is the decision lines of one request on their way to the
// log: one line for POST /v1/check, one per decision for an AuthZEN batch
// or search, which are written together, in one batch. Entries are pooled
// with their request's buffers, reply channel included: the hot path
// allocates neither. Once it is answered, the log no longer touches it.
type logEntry struct {
	line []byte     // one or more lines, each ending in '\n'
	ids  [][]byte   // the decision id of each line, for a not_given record
	errc chan error // cap 1; a leader answers every entry it writes
	// w, when set, is the HTTP/1 response of the entry's request, which
	// the watchdog can answer itself while the handler is blocked
	// writing the log (see rescue).
	w http.ResponseWriter

	// Owned by the log while the entry waits.
	due time.Time // answered 503 when not written by then
	end int       // offset in the batch just past the line
}

// errLead answers a waiting entry with the lead instead of an outcome: the
// entry's handler now writes everything waiting, its own line included.
var errLead = errors.New("decision log: lead the next batch")

// decisionLog writes decision lines with group commit and no goroutine of
// its own (leader/follower), and never lets a decision wait for its line
// longer than the log timeout, whatever the file does.
//
// The handler that finds the log idle becomes the leader: it writes its
// line itself, with one write(2) (and an fsync when fsync is set), and
// returns. Handlers that arrive while a leader writes queue their lines and
// wait; when the leader is done, it answers its batch and passes the lead
// to the first waiting handler, which writes everything queued in one
// batch. A lone request costs no goroutine switch (a writer goroutine cost
// two, and at low load the wake-up of a second thread: 40% of the
// handler's time); under load, one write serves everything that queued
// during the previous one. Only the leader touches the file, so reopening
// needs no lock against writing: a reopen takes the lead too.
//
// write(2), fsync(2), open(2) and close(2) can block in the kernel for
// good: a FIFO whose reader stopped reading, a pipe to a stalled log
// shipper, a file system that stopped answering. So a watchdog timer
// answers for the leader. A line not written by its due time (the log
// timeout after it was queued) is answered errLogTimeout; and once the
// leader's system call has not returned for the log timeout, the log is
// stuck: every line waiting is answered errLogStuck, and every new one at
// once, so that neither goroutines nor memory pile up behind it. The
// leader's own request, whose handler is the goroutine blocked in the
// kernel, is answered by the watchdog (rescue): for HTTP/1, a 503 with
// Connection: close, written from another goroutine. A request that
// cannot be answered that way (HTTP/2, where the stream ends only when its
// handler returns) never leads: a helper goroutine leads for it, at the
// cost of a goroutine switch. When the system call returns, the leader
// records what it must (below), and the log recovers by itself.
//
// A line is never written after its request was answered, with one
// exception: a line the watchdog answers while the write carrying it is in
// progress may reach the file when the write returns, as may the whole
// lines before the point where a failed write was cut short. Such a
// decision was not given, so once the write has returned the leader
// records that, before anything else, in a not_given record naming the
// decisions (see appendNotGiven).
type decisionLog struct {
	w       io.Writer
	file    *LogFile     // w as a LogFile, which can be reopened; else nil
	fsync   func() error // nil: no fsync
	timeout time.Duration
	clock   func() time.Time
	logger  *slog.Logger
	// onError counts decisions refused because of the log; onStuck
	// reports the stuck state; rescue answers a leader's request 503
	// (from another goroutine) and returns when it has. The server
	// provides them.
	onError func(n int)
	onStuck func(bool)
	rescue  func(w http.ResponseWriter)

	mu      sync.Mutex
	pending []*logEntry // waiting for the next batch, in arrival order
	// pendingBytes sums the lines in pending.
	pendingBytes int
	reopens      []*reopening // files to switch to before the next batch
	busy         bool         // a leader holds the file
	closed       bool
	idle         sync.Cond // broadcast when busy turns false
	// The leader's system call: inIO is set while it may block, since
	// ioStart. inflight is the batch being written, an entry set to nil
	// once the watchdog answered it; early holds what a not_given record
	// needs of those. leader is the leader's own entry (nil for a
	// helper); rescuedc, when the watchdog answered it, is closed once
	// that answer is written.
	inIO     bool
	ioStart  time.Time
	inflight []*logEntry
	early    []early
	leader   *logEntry
	rescuedc chan struct{}
	stuck    bool
	failing  bool      // the latest write failed, or one is stuck
	armed    time.Time // when the watchdog fires; zero when it does not
	watchdog *time.Timer
	// said holds operational log lines to emit once l.mu is released: a
	// blocked stderr must not hold up every decision.
	said []func()

	// queued counts entries waiting for a batch; tests wait on it.
	queued atomic.Int64
	// writeErr holds the error of the latest write when it failed or is
	// stuck, nil when it succeeded; reopenErr the error of the latest
	// reopen when it failed. /healthz shows them.
	writeErr  atomic.Pointer[string]
	reopenErr atomic.Pointer[string]

	// Owned by the leader.
	batch []byte
	// torn is set when a failed write left part of a line in the file:
	// the next batch starts with tornEnd, so the fragment stays a line of
	// its own that does not parse, rather than corrupting the next one.
	torn bool
	// notGiven holds the ids of decisions whose lines reached the file
	// after their request was answered 503; the next batch starts with
	// a not_given record naming them.
	notGiven [][]byte
}

// early is an entry of the batch in flight that the watchdog answered.
type early struct {
	ids  [][]byte // copies: the entry itself is reused once answered
	ends []int    // the offset in the batch just past each of its lines
}

// decisions returns how many decisions e holds: one per line.
func (e *logEntry) decisions() int { return max(1, len(e.ids)) }

// lineEnds returns the offset in the batch just past each line of e, which
// ends at e.end.
func (e *logEntry) lineEnds() []int {
	var ends []int
	start := e.end - len(e.line)
	for off := 0; off < len(e.line); {
		i := bytes.IndexByte(e.line[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
		ends = append(ends, start+off)
	}
	return ends
}

// written appends to dst copies of the ids whose lines end at or before
// written: the lines that reached the file whole.
func written(dst [][]byte, ids [][]byte, ends []int, n int) [][]byte {
	for k, end := range ends {
		if end > n || k >= len(ids) {
			break
		}
		dst = append(dst, bytes.Clone(ids[k]))
	}
	return dst
}

// copyIDs returns copies of ids.
func copyIDs(ids [][]byte) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = bytes.Clone(id)
	}
	return out
}

// A reopening is a file opened anew for the log, waiting for a leader to
// switch to it.
type reopening struct {
	f    *os.File
	errc chan error // cap 1
}

// A Syncer is a decision log that can flush to stable storage.
type Syncer interface {
	Sync() error
}

// logConfig configures a decisionLog.
type logConfig struct {
	sync    bool          // fsync each batch, when the writer is a Syncer
	timeout time.Duration // DefaultLogTimeout when 0
	clock   func() time.Time
	logger  *slog.Logger
	onError func(n int)
	onStuck func(bool)
	rescue  func(w http.ResponseWriter)
}

// newDecisionLog returns a decision log writing to w. A *LogFile can be
// reopened.
func newDecisionLog(w io.Writer, c logConfig) *decisionLog {
	l := &decisionLog{
		w:       w,
		timeout: c.timeout,
		clock:   c.clock,
		logger:  c.logger,
		onError: c.onError,
		onStuck: c.onStuck,
		rescue:  c.rescue,
		batch:   make([]byte, 0, 64<<10),
	}
	if l.timeout <= 0 {
		l.timeout = DefaultLogTimeout
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.onError == nil {
		l.onError = func(int) {}
	}
	if l.onStuck == nil {
		l.onStuck = func(bool) {}
	}
	l.file, _ = w.(*LogFile)
	if s, ok := w.(Syncer); ok && c.sync {
		l.fsync = s.Sync
	}
	l.idle.L = &l.mu
	l.watchdog = time.AfterFunc(time.Hour, l.expire)
	l.watchdog.Stop()
	return l
}

// canLead reports whether e's handler may lead: whether the watchdog
// could answer its request if the handler blocked in the kernel.
func (l *decisionLog) canLead(e *logEntry) bool { return e.w != nil || l.rescue == nil }

// write puts e's line in the log and returns when it is written (and
// synced), or when it cannot be: the write failed, the line was not
// written within the log timeout, or the log is stuck or closed. It
// returns errRescued when e's request was answered meanwhile. The caller
// keeps ownership of e.
func (l *decisionLog) write(e *logEntry) error {
	now := time.Now()
	e.due = now.Add(l.timeout)
	l.mu.Lock()
	var err error
	switch {
	case l.closed:
		err = ErrLogClosed
	case l.stuck:
		err = errLogStuck
	case l.pendingBytes+len(e.line) > maxPending:
		err = errLogBusy
	}
	if err != nil {
		l.mu.Unlock()
		l.onError(e.decisions())
		return err
	}
	if !l.busy && l.canLead(e) {
		l.busy = true
		return l.lead(e, now)
	}
	l.pending = append(l.pending, e)
	l.pendingBytes += len(e.line)
	l.queued.Add(1)
	if !l.busy {
		l.busy = true
		go l.helpLead()
	}
	l.mu.Unlock()
	if err := <-e.errc; err != errLead {
		return err
	}
	l.mu.Lock()
	return l.lead(e, time.Now())
}

// helpLead leads on behalf of handlers that cannot lead themselves (and of
// reopens and not_given records), with busy already set.
func (l *decisionLog) helpLead() {
	l.mu.Lock()
	l.lead(nil, time.Now())
}

// lead switches to a reopened file if one waits, then writes self's line
// and the pending ones (up to maxBatch bytes), then passes the lead on or
// leaves the log idle. It is called with l.mu held and busy set, and
// returns with l.mu released. self, the leader's own entry, is not in
// pending (nil for a helper); its outcome is returned rather than sent.
// now is the time, as the caller last read it.
func (l *decisionLog) lead(self *logEntry, now time.Time) (own error) {
	if self != nil {
		if !now.Before(self.due) {
			// It waited its time out for the lead: answer it, and let
			// another lead.
			l.onError(self.decisions())
			l.release()
			return errLogTimeout
		}
		self.end = 0
		l.leader = self
	}
	if len(l.reopens) > 0 {
		l.switchFile()
		now = time.Now()
	}
	b := l.batch[:0]
	if l.torn {
		b = append(b, tornEnd...)
	}
	if len(l.notGiven) > 0 {
		b = appendNotGiven(b, l.clock(), l.notGiven)
	}
	prefix := len(b)
	// Take the lines. One whose request has waited its time out is not
	// written: lines are written only while their requests wait.
	if self != nil && l.rescuedc == nil {
		b = append(b, self.line...)
		self.end = len(b)
	}
	n, expired := 0, 0
	for ; n < len(l.pending); n++ {
		e := l.pending[n]
		if len(b) > prefix && len(b)+len(e.line) > maxBatch {
			break
		}
		l.pendingBytes -= len(e.line)
		if !now.Before(e.due) {
			expired += e.decisions()
			e.errc <- errLogTimeout
			continue
		}
		b = append(b, e.line...)
		e.end = len(b)
		l.inflight = append(l.inflight, e)
	}
	rest := copy(l.pending, l.pending[n:])
	clear(l.pending[rest:])
	l.pending = l.pending[:rest]
	l.queued.Add(-int64(n))
	if expired > 0 {
		l.onError(expired)
	}
	l.batch = b
	if len(b) > 0 {
		l.beginIO(now)
		l.mu.Unlock()
		own = l.commit(self, prefix)
	}
	rescuedc := l.rescuedc
	l.leader, l.rescuedc = nil, nil
	l.release()
	if rescuedc != nil {
		<-rescuedc // the 503 is written; the handler must not answer
		return errRescued
	}
	return own
}

// commit writes the batch (with an fsync when set) and answers it; the
// outcome for self, the leader's entry, is returned. It is called without
// l.mu, and returns with it held.
func (l *decisionLog) commit(self *logEntry, prefix int) (own error) {
	b := l.batch

	n, err := safeWrite(l.w, b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err == nil && l.fsync != nil {
		err = safeCall(l.fsync)
	}

	l.mu.Lock()
	l.endIO()
	if n >= prefix {
		l.notGiven = l.notGiven[:0]
	}
	// Answer the batch. A line answered before its write returned (by
	// the watchdog), or whose write failed after it was whole in the
	// file, reached the file though its request got a 503.
	failed := 0
	lost := func(e *logEntry) {
		failed += e.decisions()
		if e.end-len(e.line) < n {
			l.notGiven = written(l.notGiven, e.ids, e.lineEnds(), n)
		}
	}
	if self != nil && l.rescuedc == nil && self.end > 0 {
		own = err
		if err != nil {
			lost(self)
		}
	}
	for i, e := range l.inflight {
		l.inflight[i] = nil
		if e == nil {
			continue
		}
		if err != nil {
			lost(e)
		}
		e.errc <- err
	}
	l.inflight = l.inflight[:0]
	for _, x := range l.early {
		l.notGiven = written(l.notGiven, x.ids, x.ends, n)
	}
	l.early = l.early[:0]
	if err != nil {
		if n > 0 {
			l.torn = b[min(n, len(b))-1] != '\n'
		}
	} else {
		l.torn = false
	}
	l.note(err)
	if failed > 0 {
		l.onError(failed)
	}
	if cap(l.batch) > 4*maxBatch {
		l.batch = make([]byte, 0, 64<<10)
	}
	return own
}

// release passes the lead to the first waiting handler (or to a helper),
// or leaves the log idle. It is called with l.mu held and releases it.
func (l *decisionLog) release() {
	switch {
	case len(l.pending) > 0 && l.canLead(l.pending[0]):
		// Out of pending, next is out of the watchdog's sight: it
		// will not answer an entry that was sent the lead.
		next := l.pending[0]
		l.pendingBytes -= len(next.line)
		l.queued.Add(-1)
		rest := copy(l.pending, l.pending[1:])
		l.pending[rest] = nil
		l.pending = l.pending[:rest]
		l.unlock()
		next.errc <- errLead
	case len(l.pending) > 0 || len(l.reopens) > 0 || len(l.notGiven) > 0 && !l.failing:
		l.unlock()
		go l.helpLead()
	default:
		l.busy = false
		l.idle.Broadcast()
		l.unlock()
	}
}

// say logs f once l.mu is released. Called with l.mu held.
func (l *decisionLog) say(f func()) { l.said = append(l.said, f) }

// unlock releases l.mu and logs what was said under it.
func (l *decisionLog) unlock() {
	said := l.said
	l.said = nil
	l.mu.Unlock()
	for _, f := range said {
		f()
	}
}

// beginIO marks the leader as in a system call that may block, and arms
// the watchdog. Called with l.mu held.
func (l *decisionLog) beginIO(now time.Time) {
	l.inIO, l.ioStart = true, now
	l.arm(now)
}

// endIO marks the leader as out of its system call; when the log was
// stuck, it has recovered. Called with l.mu held.
func (l *decisionLog) endIO() {
	l.inIO = false
	if l.stuck {
		l.stuck = false
		l.onStuck(false)
		took := time.Since(l.ioStart).Round(time.Millisecond)
		l.say(func() {
			l.logger.Info("decision log: the stuck write returned; taking decisions again", "after", took.String())
		})
	}
}

// appendNotGiven appends a not_given record: one JSON line naming
// decisions whose lines are in the log although their requests were
// answered 503, so that nobody was given them. It has none of a
// decision's members but time, so no reader takes it for a decision.
func appendNotGiven(b []byte, now time.Time, ids [][]byte) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, now)
	b = append(b, `","not_given":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, string(id))
	}
	b = append(b, `],"why":`...)
	b = appendString(b, notGivenWhy)
	return append(b, "}\n"...)
}

// expire is the watchdog: it answers the lines whose time is up and, once
// the leader's system call has not returned for the log timeout, declares
// the log stuck and answers every line waiting, the leader's own request
// included. It runs on a timer goroutine.
func (l *decisionLog) expire() {
	l.mu.Lock()
	defer l.unlock()
	l.armed = time.Time{}
	now := time.Now()
	if l.inIO && !l.stuck && now.Sub(l.ioStart) >= l.timeout {
		l.stuck = true
		l.onStuck(true)
		msg := "decision log: a write has not returned for " + l.timeout.String() + " (a FIFO or pipe nobody reads, or a file system that stopped answering); answering 503 until it returns"
		l.writeErr.Store(&msg)
		l.failing = true
		l.say(func() { l.logger.Error(msg) })
		for _, r := range l.reopens {
			l.say(func() { r.f.Close() })
			r.errc <- errLogStuck
		}
		l.reopens = nil
	}
	answered := 0
	if e := l.leader; e != nil && l.inIO && l.rescuedc == nil && e.w != nil && l.rescue != nil && (l.stuck || !now.Before(e.due)) {
		// The leader's handler is blocked in the kernel: answer its
		// request from here.
		done := make(chan struct{})
		l.rescuedc = done
		go func(w http.ResponseWriter) {
			defer close(done)
			l.rescue(w)
		}(e.w)
		if e.end > 0 {
			l.early = append(l.early, early{ids: copyIDs(e.ids), ends: e.lineEnds()})
		}
		answered += e.decisions()
	}
	for i, e := range l.inflight {
		if e == nil || !l.stuck && now.Before(e.due) {
			continue
		}
		// Copied first: once answered, the entry is its handler's again.
		l.early = append(l.early, early{ids: copyIDs(e.ids), ends: e.lineEnds()})
		l.inflight[i] = nil
		answered += e.decisions()
		e.errc <- errLogTimeout
	}
	keep := 0
	for _, e := range l.pending {
		if !l.stuck && now.Before(e.due) {
			l.pending[keep] = e
			keep++
			continue
		}
		l.pendingBytes -= len(e.line)
		answered += e.decisions()
		if l.stuck {
			e.errc <- errLogStuck
		} else {
			e.errc <- errLogTimeout
		}
	}
	clear(l.pending[keep:])
	l.queued.Add(-int64(len(l.pending) - keep))
	l.pending = l.pending[:keep]
	if answered > 0 {
		l.onError(answered)
	}
	l.arm(now)
}

// arm sets the watchdog for the next moment it has something to do: the
// due time of the oldest line waiting, or when the system call in progress
// will have taken the log timeout. A watchdog already set to fire earlier
// is left alone, so that a batch costs no timer operation: when it fires
// early it finds nothing to do and sets itself again. Called with l.mu
// held.
func (l *decisionLog) arm(now time.Time) {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if l.inIO && !l.stuck {
		earlier(l.ioStart.Add(l.timeout))
		if l.leader != nil && l.rescuedc == nil {
			earlier(l.leader.due)
		}
	}
	for _, e := range l.inflight {
		if e != nil {
			earlier(e.due)
			break
		}
	}
	if len(l.pending) > 0 {
		earlier(l.pending[0].due)
	}
	if next.IsZero() || !l.armed.IsZero() && !l.armed.After(next) {
		return
	}
	l.armed = next
	l.watchdog.Reset(max(next.Sub(now), 0))
}

// Reopen opens the log file's path again and switches to it between two
// batches, so that logrotate can move the old file away. Opening never
// waits for a FIFO's reader (it fails instead), but can block on a file
// system that stopped answering: Reload runs it in a goroutine it can
// give up on, and once ctx has ended a file opened late is not switched
// to.
func (l *decisionLog) Reopen(ctx context.Context) error {
	if l.file == nil {
		return nil
	}
	f, err := l.file.reopenFile()
	if err != nil {
		l.reopenFailed(err)
		return err
	}
	if ctx.Err() != nil {
		f.Close()
		return ctx.Err()
	}
	return l.switchTo(f)
}

// switchTo hands f, the log's path opened anew, to the leader, which
// switches to it and closes the old file before its next batch; when the
// log is idle, the caller leads for that. It waits at most the log
// timeout for a leader; while the log is stuck, it refuses at once.
func (l *decisionLog) switchTo(f *os.File) error {
	l.mu.Lock()
	var err error
	switch {
	case l.closed:
		err = ErrLogClosed
	case l.stuck:
		err = fmt.Errorf("%w; the decision log keeps its file", errLogStuck)
	}
	if err != nil {
		l.mu.Unlock()
		f.Close()
		l.reopenFailed(err)
		return err
	}
	r := &reopening{f: f, errc: make(chan error, 1)}
	l.reopens = append(l.reopens, r)
	if !l.busy {
		l.busy = true
		l.lead(nil, time.Now())
	} else {
		l.mu.Unlock()
	}
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case err = <-r.errc:
	case <-timer.C:
		err = fmt.Errorf("decision log: the switch to the reopened file did not happen within %s", l.timeout)
	}
	if err != nil {
		l.reopenFailed(err)
		return err
	}
	l.reopenErr.Store(nil)
	return nil
}

// reopenFailed records a failed reopen for /healthz and the log.
func (l *decisionLog) reopenFailed(err error) {
	msg := "reopen decision log: " + err.Error() + "; still writing to the file opened before"
	l.reopenErr.Store(&msg)
	l.logger.Error("reopen decision log failed; still writing to the file opened before", "err", err)
}

// switchFile switches to the newest reopened file waiting, closing any
// older ones and the file in use. Called by the leader with l.mu held; it
// releases it for the I/O.
func (l *decisionLog) switchFile() {
	rs := l.reopens
	l.reopens = nil
	l.beginIO(time.Now())
	l.mu.Unlock()
	for _, r := range rs[:len(rs)-1] {
		r.f.Close()
		r.errc <- nil // superseded by a later reopen
	}
	r := rs[len(rs)-1]
	old, err := l.file.use(r.f)
	if err == nil {
		l.torn = false // a new file starts clean
	}
	r.errc <- err
	if old != nil {
		old.Close()
	}
	l.mu.Lock()
	l.endIO()
	if err == nil && l.failing {
		// The old file's write error says nothing about the new one;
		// the next write tells.
		l.failing = false
		l.writeErr.Store(nil)
	}
}

// close stops taking decisions and waits until the lines already queued
// are written, or ctx ends. It does not wait for a stuck write: the
// decisions waiting for it have been answered 503 already.
func (l *decisionLog) close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		l.mu.Lock()
		busy, stuck := l.busy, l.stuck && len(l.pending) == 0
		if !busy {
			// Nothing will arm it again; stopped, it no longer keeps
			// the log reachable.
			l.watchdog.Stop()
			l.armed = time.Time{}
		}
		l.mu.Unlock()
		switch {
		case !busy:
			return nil
		case stuck:
			return errors.New("decision log: a write is stuck; the decisions waiting for it were answered 503")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("decision log: lines still waiting when the time to flush ran out: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Close stops the log, waiting at most the log timeout for the lines
// queued to be written.
func (l *decisionLog) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	return l.close(ctx)
}

// Err returns what is wrong with the log, or "": a write failing or
// stuck, or else the latest reopen failing.
func (l *decisionLog) Err() string {
	if p := l.writeErr.Load(); p != nil {
		return *p
	}
	if p := l.reopenErr.Load(); p != nil {
		return *p
	}
	return ""
}

// safeWrite calls w.Write, turning a panic in a custom writer into an
// error: the decisions fail with 503 instead of the process crashing.
func safeWrite(w io.Writer, p []byte) (n int, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, err = 0, fmt.Errorf("decision log writer panicked: %v", v)
		}
	}()
	return w.Write(p)
}

// safeCall calls f, turning a panic into an error.
func safeCall(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("decision log panicked: %v", v)
		}
	}()
	return f()
}

// note records the outcome of a write and logs changes of state only, so a
// failing disk does not flood the operational log. Called with l.mu held.
func (l *decisionLog) note(err error) {
	switch {
	case err != nil && !l.failing:
		l.failing = true
		msg := err.Error()
		l.writeErr.Store(&msg)
		l.say(func() { l.logger.Error("decision log write failed; answering 503 until it recovers", "err", err) })
	case err != nil:
		if msg := err.Error(); msg != l.Err() {
			l.writeErr.Store(&msg)
		}
	case l.failing:
		l.failing = false
		l.writeErr.Store(nil)
		l.say(func() { l.logger.Info("decision log writes recovered") })
	}
}
