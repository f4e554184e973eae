package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
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

// A logEntry is the decision records of one request on their way to the
// log: one for POST /v1/check, one per decision for an AuthZEN batch or
// search, which are written together, in one batch. Entries are pooled
// with their request's buffers, reply channel included: the hot path
// allocates neither. Once it is answered, the log no longer touches it.
type logEntry struct {
	// line holds the records, each without its end (the closing brace)
	// and followed by a newline: the leader links each to the chain
	// (decisionlog.Link), which ends it.
	line []byte
	ids  [][]byte   // the decision id of each record, for a not_given record
	errc chan error // cap 1; a leader answers every entry it writes
	// w, when set, is the HTTP/1 response of the entry's request, which
	// the watchdog can answer itself while the handler is blocked
	// writing the log (see rescue).
	w http.ResponseWriter

	// Owned by the log while the entry waits.
	due time.Time // answered 503 when not written by then
	// ends holds the offset in the batch just past each of its lines;
	// empty while the entry is not in the batch.
	ends []int
}

// decisions returns how many decisions e holds: one per record.
func (e *logEntry) decisions() int { return max(1, len(e.ids)) }

// link appends e's records to batch b, each linked to the chain standing
// at h, marks them, and returns b and the head after them. It notes where
// each of e's lines ends in the batch.
func (l *decisionLog) link(b []byte, e *logEntry, h decisionlog.Head) ([]byte, decisionlog.Head) {
	e.ends = e.ends[:0]
	for rest := e.line; len(rest) > 0; {
		rec := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rec, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil // a last record without its newline
		}
		start := len(b)
		b = append(b, rec...)
		b, h = decisionlog.Link(b, start, h)
		l.marks = append(l.marks, mark{len(b), h, markRecord})
		e.ends = append(e.ends, len(b))
	}
	return b, h
}

// wholeIDs appends to dst copies of the ids whose lines end at or before
// n, the bytes written: the lines that reached the file whole.
func wholeIDs(dst [][]byte, ids [][]byte, ends []int, n int) [][]byte {
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

// errLead answers a waiting entry with the lead instead of an outcome: the
// entry's handler now writes everything waiting, its own line included.
var errLead = errors.New("decision log: lead the next batch")

// errSynced tells a leader that its own line, written, waits for the
// syncer's flush like the others'.
var errSynced = errors.New("decision log: written, waiting for the flush")

// decisionLog writes decision lines with group commit and no goroutine of
// its own (leader/follower), but for the syncer that flushes the file when
// fsync is set, and never lets a decision wait for its line longer than
// the log timeout, whatever the file does.
//
// The handler that finds the log idle becomes the leader: it writes its
// line itself, with one write(2), and returns. Handlers that arrive while
// a leader writes queue their lines and wait; when the leader is done, it
// answers its batch and passes the lead to the first waiting handler,
// which writes everything queued in one batch. A lone request costs no
// goroutine switch (a writer goroutine cost two, and at low load the
// wake-up of a second thread: 40% of the handler's time); under load, one
// write serves everything that queued during the previous one. Only the
// leader touches the file, so reopening needs no lock against writing: a
// reopen takes the lead too.
//
// With fsync set, the syncer goroutine (syncLoop) flushes: a leader's
// written lines wait for the next flush, and their requests are answered
// once it has returned, with its outcome. Lines that come while a flush
// runs queue; when it returns, the syncer lets the decisions in flight
// join (join: a bounded group-commit delay), writes them in one batch,
// and flushes again, so that flushes follow each other as fast as the
// disk allows, each covering as many decisions as came meanwhile.
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
	w     io.Writer
	file  *LogFile     // w as a LogFile, which can be reopened; else nil
	fsync func() error // nil: no fsync
	// logConfig is the configuration, its defaults filled in.
	logConfig

	mu      sync.Mutex
	pending []*logEntry // waiting for the next batch, in arrival order
	// pendingBytes sums the lines in pending.
	pendingBytes int
	reopens      []*reopening // files to switch to before the next batch
	busy         bool         // a leader holds the file
	closed       bool
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
	// stuckWrite (stuckSync) is set while a write (a flush) has not
	// returned for the log timeout: the log is stuck (see stuck).
	stuckWrite, stuckSync bool
	armed                 time.Time // when the watchdog fires; zero when it does not
	watchdog              *time.Timer
	// said holds operational log lines to emit once l.mu is released: a
	// blocked stderr must not hold up every decision.
	said []func()

	// writeErr holds the error of the latest write when it failed or is
	// stuck, nil when it succeeded (see failing); reopenErr the error of
	// the latest reopen when it failed. /healthz shows them. writeErr
	// changes only under l.mu.
	writeErr  atomic.Pointer[string]
	reopenErr atomic.Pointer[string]

	// With fsync on, a syncer goroutine flushes what the leaders wrote,
	// pipelined: while it flushes one batch, a leader writes the next,
	// which the following flush covers. A written entry waits in
	// unsynced until the syncer takes it into syncing (an entry set to
	// nil once the watchdog answered it); dirty says bytes were written
	// since the syncer last took its batch; syncIO and syncStart say it
	// is in fdatasync. syncWake wakes the syncer; synced is broadcast
	// when a flush is done.
	unsynced, syncing []*logEntry
	dirty, syncIO     bool
	syncStart         time.Time
	syncWake, synced  sync.Cond
	syncClosed        bool
	lastFlush         int // lines the last flush covered

	// head is where the chain stands after the last whole line written
	// (the leader's to change, under l.mu). /healthz and /metrics show
	// it; the next record links to it.
	head decisionlog.Head
	// Checkpoints, when signer is set: one is written every ckLines
	// records, ckInterval after the last one when records were written
	// since (ckTimer), before the file is switched on reopen, and at
	// close. sinceCk counts the records written since the last one;
	// ckForce asks for one in the next batch.
	ckTimer    *time.Timer
	sinceCk    int
	lastCk     time.Time
	lastCkHead decisionlog.Head
	ckForce    bool
	ckArmed    bool // ckTimer is set
	// ckBeforeSwitch is set once the batch before a pending switch to a
	// reopened file carried a checkpoint for the old file.
	ckBeforeSwitch bool

	// Owned by the leader.
	batch []byte
	// partial holds the part of a line a failed write left in the file,
	// empty when none: the next batch starts with its end
	// (decisionlog.AppendTornEnd), so the fragment stays a line of its
	// own that does not parse, rather than corrupting the next one, and
	// the next record's prev is the hash of the whole.
	partial []byte
	// marks holds, for each line of the batch being written, where it
	// ends and the chain's head after it: once the write returns, the
	// head is that of the last line that reached the file.
	marks []mark
	// notGiven holds the ids of decisions whose lines reached the file
	// after their request was answered 503; the next batch starts with
	// a not_given record naming them.
	notGiven [][]byte
}

// A mark is a line of the batch in flight: where it ends in the batch,
// the chain's head after it, and what it is.
type mark struct {
	end  int
	head decisionlog.Head
	kind markKind
}

type markKind uint8

const (
	markRecord     markKind = iota // a decision or a not_given record
	markTorn                       // the end of a fragment
	markCheckpoint                 // a checkpoint
)

// early is an entry of the batch in flight that the watchdog answered.
type early struct {
	ids  [][]byte // copies: the entry itself is reused once answered
	ends []int    // the offset in the batch just past each of its lines
}

// earlyOf returns what a not_given record needs of e, copied.
func earlyOf(e *logEntry) early {
	return early{ids: copyIDs(e.ids), ends: slices.Clone(e.ends)}
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
	// onError counts decisions refused because of the log; onStuck
	// reports the stuck state; rescue answers a leader's request 503
	// (from another goroutine) and returns when it has; onFlush counts
	// a flush and the lines it covered. The server provides them.
	onError func(n int)
	onStuck func(bool)
	rescue  func(w http.ResponseWriter)
	onFlush func(lines int)
	// signer, when set, signs checkpoints every ckLines records
	// (DefaultCheckpointLines when 0) and ckInterval after the last
	// (DefaultCheckpointInterval when 0).
	signer     *decisionlog.Signer
	ckLines    int
	ckInterval time.Duration
}

// Defaults for checkpoints: at 10,000 decisions a second, one a second,
// about 0.1% of the lines.
const (
	DefaultCheckpointLines    = 10000
	DefaultCheckpointInterval = time.Minute
)

// newDecisionLog returns a decision log writing to w. A *LogFile can be
// reopened.
func newDecisionLog(w io.Writer, c logConfig) *decisionLog {
	l := &decisionLog{w: w, logConfig: c, batch: make([]byte, 0, 64<<10)}
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
	if l.onFlush == nil {
		l.onFlush = func(int) {}
	}
	l.file, _ = w.(*LogFile)
	if s, ok := w.(Syncer); ok && c.sync {
		l.fsync = s.Sync
	}
	// A file continues the chain it holds; another writer starts one.
	if l.file != nil {
		l.head = l.file.head
	}
	if l.signer != nil {
		if l.ckLines <= 0 {
			l.ckLines = DefaultCheckpointLines
		}
		if l.ckInterval <= 0 {
			l.ckInterval = DefaultCheckpointInterval
		}
		l.lastCk = time.Now()
		l.ckTimer = time.AfterFunc(time.Hour, l.checkpointDue)
		l.ckTimer.Stop()
	}
	l.syncWake.L, l.synced.L = &l.mu, &l.mu
	l.watchdog = time.AfterFunc(time.Hour, l.expire)
	l.watchdog.Stop()
	if l.fsync != nil {
		go l.syncLoop()
	}
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
	case l.stuck():
		err = errLogStuck
	case l.pendingBytes+len(e.line) > maxPending:
		err = errLogBusy
	}
	if err != nil {
		l.mu.Unlock()
		l.onError(e.decisions())
		return err
	}
	if !l.busy && l.canLead(e) && !l.flushing() {
		l.busy = true
		return l.lead(e, now)
	}
	l.pending = append(l.pending, e)
	l.pendingBytes += len(e.line)
	if !l.busy && !l.flushing() {
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
		self.ends = self.ends[:0]
		l.leader = self
	}
	if len(l.reopens) > 0 {
		if l.signer != nil && l.sinceCk > 0 && !l.failing() && !l.ckBeforeSwitch {
			// This batch, with a checkpoint, still goes to the old
			// file, so that it ends signed; the next switches.
			l.ckBeforeSwitch, l.ckForce = true, true
		} else {
			l.switchFile()
			l.ckBeforeSwitch = false
			now = time.Now()
		}
	}
	b := l.batch[:0]
	l.marks = l.marks[:0]
	h := l.head
	torn := len(l.partial) > 0
	if torn {
		start := len(b)
		b = decisionlog.AppendTornEnd(b, h)
		h.Hash = joinHash(l.partial, b[start:])
		l.marks = append(l.marks, mark{len(b), h, markTorn})
	}
	if len(l.notGiven) > 0 {
		start := len(b)
		b = decisionlog.AppendNotGiven(b, l.clock(), l.notGiven)
		b, h = decisionlog.Link(b, start, h)
		l.marks = append(l.marks, mark{len(b), h, markRecord})
	}
	prefix := len(b)
	// Take the lines. One whose request has waited its time out is not
	// written: lines are written only while their requests wait.
	if self != nil && l.rescuedc == nil {
		b, h = l.link(b, self, h)
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
		b, h = l.link(b, e, h)
		l.inflight = append(l.inflight, e)
	}
	rest := copy(l.pending, l.pending[n:])
	clear(l.pending[rest:])
	l.pending = l.pending[:rest]
	if expired > 0 {
		l.onError(expired)
	}
	// A checkpoint ends the batch when one is due and there is anything
	// since the last for it to sign; the leader signs it once l.mu is
	// released.
	records := len(l.marks)
	if torn {
		records--
	}
	unsigned := l.sinceCk + records
	ck := l.signer != nil && !l.failing() && (l.ckForce || unsigned >= l.ckLines) && unsigned > 0
	if ck || unsigned == 0 {
		l.ckForce = false
	}
	l.batch = b
	if len(b) > 0 || ck {
		l.beginIO(now)
		l.mu.Unlock()
		own = l.commit(self, prefix, h, ck)
	}
	rescuedc := l.rescuedc
	l.leader, l.rescuedc = nil, nil
	l.release()
	if rescuedc != nil {
		<-rescuedc // the 503 is written; the handler must not answer
		return errRescued
	}
	if own == errSynced {
		return <-self.errc // the syncer's outcome, or the watchdog's
	}
	return own
}

// commit writes the batch (with an fsync when set) and answers it; the
// outcome for self, the leader's entry, is returned. h is the chain's
// head after the batch; ck asks for a checkpoint at its end. It is called
// without l.mu, and returns with it held.
func (l *decisionLog) commit(self *logEntry, prefix int, h decisionlog.Head, ck bool) (own error) {
	if ck {
		start := len(l.batch)
		var err error
		l.batch, err = l.signer.AppendCheckpoint(l.batch, l.clock(), h)
		if err == nil {
			l.batch, h = decisionlog.Link(l.batch, start, h)
			l.marks = append(l.marks, mark{len(l.batch), h, markCheckpoint})
		} else {
			l.batch = l.batch[:start]
			l.logger.Error("decision log: no checkpoint", "err", err)
		}
	}
	b := l.batch

	written, err := safeWrite(l.w, b)
	if err == nil && written < len(b) {
		err = io.ErrShortWrite
	}

	l.mu.Lock()
	l.endIO()
	l.advance(b, written)
	if err == nil && l.fsync != nil {
		// Written: the syncer flushes it, and answers the entries once
		// it has, while the next leader writes.
		l.dirty = true
		if self != nil && l.rescuedc == nil && len(self.ends) > 0 {
			l.unsynced = append(l.unsynced, self)
			own = errSynced
		}
		for i, e := range l.inflight {
			l.inflight[i] = nil
			if e != nil {
				l.unsynced = append(l.unsynced, e)
			}
		}
		l.inflight = l.inflight[:0]
		l.syncWake.Signal()
	}
	if written >= prefix {
		l.notGiven = l.notGiven[:0]
	}
	// Answer the batch. A line answered before its write returned (by
	// the watchdog), or whose write failed after it was whole in the
	// file, reached the file though its request got a 503.
	failed := 0
	lost := func(e *logEntry) {
		failed += e.decisions()
		l.notGiven = wholeIDs(l.notGiven, e.ids, e.ends, written)
	}
	if self != nil && l.rescuedc == nil && len(self.ends) > 0 && own != errSynced {
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
		l.notGiven = wholeIDs(l.notGiven, x.ids, x.ends, written)
	}
	l.early = l.early[:0]
	if err != nil || l.fsync == nil {
		// With fsync on, a write that succeeds says nothing yet: the
		// syncer's flush tells whether the log works.
		l.note(err)
	}
	if failed > 0 {
		l.onError(failed)
	}
	if cap(l.batch) > 4*maxBatch {
		l.batch = make([]byte, 0, 64<<10)
	}
	return own
}

// advance moves the chain past the part of batch b that reached the file
// (written bytes): the head is that of the last line written whole, and
// what was written of the next line is a fragment to end before the next
// batch. It counts the records since the last checkpoint and arms the
// checkpoint timer. Called by the leader with l.mu held.
func (l *decisionLog) advance(b []byte, written int) {
	written = min(written, len(b))
	end := -1 // of the last line written whole
	for _, m := range l.marks {
		if m.end > written {
			break
		}
		end = m.end
		l.head = m.head
		switch m.kind {
		case markRecord:
			l.sinceCk++
		case markCheckpoint:
			l.sinceCk = 0
			l.lastCk = time.Now()
			l.lastCkHead = m.head
		}
	}
	switch {
	case written == len(b):
		l.partial = l.partial[:0]
	case end >= 0:
		l.partial = append(l.partial[:0], b[end:written]...)
	default:
		// Nothing ended: the fragment grows by what was written.
		l.partial = append(l.partial, b[:written]...)
	}
	if l.signer != nil && l.sinceCk > 0 && !l.ckArmed {
		l.ckArmed = true
		l.ckTimer.Reset(max(l.ckInterval-time.Since(l.lastCk), 0))
	}
}

// joinHash returns the hash of a line written in two parts: the fragment
// a failed write left, and what ends it.
func joinHash(fragment, end []byte) decisionlog.Hash {
	d := sha256.New()
	d.Write(fragment)
	d.Write(end)
	var h decisionlog.Hash
	d.Sum(h[:0])
	return h
}

// checkpointDue is the checkpoint timer: ckInterval after the last
// checkpoint, if records were written since, the next batch writes one,
// a helper leading it when the log is idle.
func (l *decisionLog) checkpointDue() {
	l.mu.Lock()
	l.ckArmed = false
	switch {
	case l.closed || l.sinceCk == 0:
		// Nothing to sign; the next record arms the timer again.
	case time.Since(l.lastCk) < l.ckInterval:
		l.ckArmed = true
		l.ckTimer.Reset(l.ckInterval - time.Since(l.lastCk))
	default:
		l.ckForce = true
		if !l.busy && !l.stuck() && !l.flushing() {
			l.busy = true
			l.mu.Unlock()
			go l.helpLead()
			return
		}
	}
	l.mu.Unlock()
}

// release passes the lead to the first waiting handler (or to a helper),
// or leaves the log idle. It is called with l.mu held and releases it.
func (l *decisionLog) release() {
	switch {
	case l.flushing():
		// The syncer writes what waits once its flush returns, in
		// one batch for the next flush.
		l.busy = false
		l.unlock()
	case len(l.pending) > 0 && l.canLead(l.pending[0]):
		// Out of pending, next is out of the watchdog's sight: it
		// will not answer an entry that was sent the lead.
		next := l.pending[0]
		l.pendingBytes -= len(next.line)
		rest := copy(l.pending, l.pending[1:])
		l.pending[rest] = nil
		l.pending = l.pending[:rest]
		l.unlock()
		next.errc <- errLead
	case l.hasWork():
		l.unlock()
		go l.helpLead()
	default:
		l.busy = false
		l.unlock()
	}
}

// hasWork reports whether a leader has something to write: lines, a file
// to switch to, or a record to write. Called with l.mu held.
func (l *decisionLog) hasWork() bool {
	return len(l.pending) > 0 || len(l.reopens) > 0 || (len(l.notGiven) > 0 || l.ckForce) && !l.failing()
}

// flushing reports whether the syncer is in a flush, during which lines
// wait for it to write them, all in one batch, once the flush returns.
// Called with l.mu held.
func (l *decisionLog) flushing() bool { return l.fsync != nil && l.syncIO }

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
// stuck on it, it has recovered (unless a flush is stuck too). Called with
// l.mu held.
func (l *decisionLog) endIO() {
	l.inIO = false
	if l.stuckWrite {
		l.unstick(&l.stuckWrite, "write", l.ioStart)
	}
}

// syncLoop is the syncer: it flushes (fdatasync) what the leaders wrote,
// as long as there is anything, and answers the entries of each flush
// once it has returned: nil, or its error, which also makes them
// not_given (their lines are in the file). Lines that come while it
// flushes wait: once the flush has returned, the syncer leads their
// batch itself, one write, and flushes it, with no other goroutine to
// wake between the flushes, each covering everything that came during
// the one before. A line that comes while the log is idle is written by
// its own handler, which the syncer then answers. It returns once the log
// is closed and nothing is left to flush.
func (l *decisionLog) syncLoop() {
	l.mu.Lock()
	for {
		for !l.dirty && !l.syncClosed {
			l.syncWake.Wait()
		}
		if !l.dirty {
			l.mu.Unlock()
			return
		}
		l.join()
		l.syncing, l.unsynced = l.unsynced, l.syncing[:0]
		l.lastFlush = len(l.syncing)
		l.dirty, l.syncIO, l.syncStart = false, true, time.Now()
		l.arm(l.syncStart)
		l.mu.Unlock()

		err := safeCall(l.fsync)
		l.onFlush(l.lastFlush)

		l.mu.Lock()
		l.syncIO = false
		if l.stuckSync {
			l.unstick(&l.stuckSync, "flush", l.syncStart)
		}
		failed := 0
		for i, e := range l.syncing {
			l.syncing[i] = nil
			if e == nil {
				continue // answered by the watchdog
			}
			if err != nil {
				failed += e.decisions()
				l.notGiven = append(l.notGiven, copyIDs(e.ids)...)
			}
			e.errc <- err
		}
		l.syncing = l.syncing[:0]
		l.note(err)
		if failed > 0 {
			l.onError(failed)
		}
		l.synced.Broadcast()
		switch {
		case l.busy || !l.hasWork() || l.stuck():
		case len(l.reopens) > 0:
			// The switch waits for the syncer to flush the old
			// file: a helper leads it.
			l.busy = true
			go l.helpLead()
		default:
			// What came during the flush: write it for the next.
			l.busy = true
			l.lead(nil, time.Now()) // releases l.mu
			l.mu.Lock()
		}
		l.unlock() // says what was said, without the lock
		l.mu.Lock()
	}
}

// How long the syncer lets decisions join a flush: in steps of joinStep,
// as long as the lines waiting grow, at most maxJoin in all.
const (
	joinStep = 20 * time.Microsecond
	maxJoin  = 200 * time.Microsecond
)

// join lets the decisions in flight join the flush about to start: a
// flush costs about the same (some 100 µs of CPU and 200 µs of waiting on
// ext4) for one line as for thirty, so the more it covers the less each
// decision pays. The syncer yields the processor to the handlers that can
// run, and, when the last flush covered more than one line (the log is
// busy), waits joinStep at a time for the requests still on the network,
// as long as the lines waiting grow, for at most maxJoin: a short bounded
// group-commit delay, which a lone decision does not pay. The lines that
// come meanwhile are written by a leader as usual: outside a flush, a
// line waits only behind a leader, which writes it next. Called by the
// syncer with l.mu held.
//
// A sleep under a millisecond ends on time only while some goroutine of
// the process runs: with none, the runtime waits for the network in whole
// milliseconds, so a join's last step can take a millisecond. Measured
// under the bench tool's load (BENCHMARKS.md, issue 14), a join took
// 280-460 µs on average and over 500 µs for 10-18% of the flushes; taking
// the sleeps out (yielding only) left the throughput as it was, with
// 11% fewer decisions a flush.
func (l *decisionLog) join() {
	waiting := func() int { return len(l.unsynced) + len(l.pending) }
	start := time.Now()
	for busy := l.lastFlush > 1; ; {
		n := waiting()
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
		if waiting() > n {
			continue
		}
		if !busy || time.Since(start)+joinStep > maxJoin {
			break
		}
		l.mu.Unlock()
		time.Sleep(joinStep)
		l.mu.Lock()
		if waiting() == n {
			break
		}
	}
}

// recordNotGiven has a helper lead, when the log is idle and working, to
// write the not_given record the watchdog or the syncer made needed.
// Called with l.mu held.
func (l *decisionLog) recordNotGiven() {
	if len(l.notGiven) > 0 && !l.busy && !l.failing() && !l.stuck() && !l.closed && !l.flushing() {
		l.busy = true
		go l.helpLead()
	}
}

// drained reports whether nothing written waits for the syncer. Called
// with l.mu held.
func (l *decisionLog) drained() bool { return !l.dirty && !l.syncIO }

// expire is the watchdog: it answers the lines whose time is up and, once
// the leader's system call has not returned for the log timeout, declares
// the log stuck and answers every line waiting, the leader's own request
// included. It runs on a timer goroutine.
func (l *decisionLog) expire() {
	l.mu.Lock()
	defer l.unlock()
	l.armed = time.Time{}
	now := time.Now()
	if l.inIO && !l.stuckWrite && now.Sub(l.ioStart) >= l.timeout {
		l.stick(&l.stuckWrite, "a write")
	}
	if l.syncIO && !l.stuckSync && now.Sub(l.syncStart) >= l.timeout {
		l.stick(&l.stuckSync, "a flush (fdatasync)")
	}
	// over reports whether e is to be answered now: its time is up, or
	// the log is stuck.
	over := func(e *logEntry) bool { return l.stuck() || !now.Before(e.due) }
	answered := 0
	if e := l.leader; e != nil && l.inIO && l.rescuedc == nil && e.w != nil && l.rescue != nil && over(e) {
		// The leader's handler is blocked in the kernel: answer its
		// request from here.
		done := make(chan struct{})
		l.rescuedc = done
		go func(w http.ResponseWriter) {
			defer close(done)
			l.rescue(w)
		}(e.w)
		if len(e.ends) > 0 {
			l.early = append(l.early, earlyOf(e))
		}
		answered += e.decisions()
	}
	for i, e := range l.inflight {
		if e == nil || !over(e) {
			continue
		}
		// Copied first: once answered, the entry is its handler's again.
		l.early = append(l.early, earlyOf(e))
		l.inflight[i] = nil
		answered += e.decisions()
		e.errc <- errLogTimeout
	}
	// Written, waiting for a flush: their lines are in the file, so
	// answered now, nobody is given them.
	written := func(e *logEntry) {
		l.notGiven = append(l.notGiven, copyIDs(e.ids)...)
		answered += e.decisions()
		e.errc <- errLogTimeout
	}
	for i, e := range l.syncing {
		if e != nil && over(e) {
			l.syncing[i] = nil
			written(e)
		}
	}
	l.unsynced = slices.DeleteFunc(l.unsynced, func(e *logEntry) bool {
		if over(e) {
			written(e)
			return true
		}
		return false
	})
	l.pending = slices.DeleteFunc(l.pending, func(e *logEntry) bool {
		if !over(e) {
			return false
		}
		l.pendingBytes -= len(e.line)
		answered += e.decisions()
		if l.stuck() {
			e.errc <- errLogStuck
		} else {
			e.errc <- errLogTimeout
		}
		return true
	})
	if answered > 0 {
		l.onError(answered)
	}
	l.recordNotGiven()
	l.arm(now)
}

// stuck reports whether the log is stuck: a write or a flush has not
// returned for the log timeout. Called with l.mu held.
func (l *decisionLog) stuck() bool { return l.stuckWrite || l.stuckSync }

// stick sets flag: what (a write, a flush) has not returned for the log
// timeout. That makes the log stuck, unless it already was: reopens
// waiting are refused. Called with l.mu held.
func (l *decisionLog) stick(flag *bool, what string) {
	was := l.stuck()
	*flag = true
	if was {
		return
	}
	l.onStuck(true)
	msg := "decision log: " + what + " has not returned for " + l.timeout.String() + " (a FIFO or pipe nobody reads, or a file system that stopped answering); answering 503 until it returns"
	l.writeErr.Store(&msg)
	l.say(func() { l.logger.Error(msg) })
	for _, r := range l.reopens {
		l.say(func() { r.f.Close() })
		r.errc <- errLogStuck
	}
	l.reopens = nil
}

// unstick clears flag: what (a write, a flush) that started at start has
// returned. That ends the stuck state once neither a write nor a flush is
// stuck. Called with l.mu held.
func (l *decisionLog) unstick(flag *bool, what string, start time.Time) {
	*flag = false
	if l.stuck() {
		return
	}
	l.onStuck(false)
	took := time.Since(start).Round(time.Millisecond)
	l.say(func() {
		l.logger.Info("decision log: the stuck "+what+" returned; taking decisions again", "after", took.String())
	})
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
	if l.inIO && !l.stuck() {
		earlier(l.ioStart.Add(l.timeout))
		if l.leader != nil && l.rescuedc == nil {
			earlier(l.leader.due)
		}
	}
	if l.syncIO && !l.stuck() {
		earlier(l.syncStart.Add(l.timeout))
	}
	for _, list := range [][]*logEntry{l.inflight, l.syncing, l.unsynced} {
		for _, e := range list {
			if e != nil {
				earlier(e.due)
				break
			}
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
	case l.stuck():
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
	// What was written to the old file is flushed before it is closed.
	for l.fsync != nil && !l.drained() {
		l.synced.Wait()
	}
	rs := l.reopens
	l.reopens = nil
	if len(rs) == 0 {
		return // refused meanwhile: the log got stuck
	}
	l.beginIO(time.Now())
	l.mu.Unlock()
	for _, r := range rs[:len(rs)-1] {
		r.f.Close()
		r.errc <- nil // superseded by a later reopen
	}
	r := rs[len(rs)-1]
	old, head, err := l.file.use(r.f, l.head)
	if err == nil {
		// A new file starts clean: the old one keeps its fragment,
		// if any, as its last line, and the chain goes on from its
		// last whole line.
		l.partial = l.partial[:0]
	}
	r.errc <- err
	if old != nil {
		old.Close()
	}
	l.mu.Lock()
	l.endIO()
	if err == nil {
		l.head = head
	}
	if err == nil && l.failing() {
		// The old file's write error says nothing about the new one;
		// the next write tells.
		l.writeErr.Store(nil)
	}
}

// close stops taking decisions and waits until the lines already queued
// are written, and, when checkpoints are on, a last checkpoint after them,
// or ctx ends. It does not wait for a stuck write: the decisions waiting
// for it have been answered 503 already.
func (l *decisionLog) close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	final := l.signer != nil
	for {
		l.mu.Lock()
		busy, stuck := l.busy || !l.drained(), l.stuck() && len(l.pending) == 0
		if !l.busy && final {
			final = false
			if l.sinceCk > 0 && !l.failing() {
				// The last lines get their signature.
				l.busy, l.ckForce, busy = true, true, true
				go l.helpLead()
			}
		}
		if !busy {
			// Nothing will arm them again; stopped, they no longer
			// keep the log reachable. Nor does the syncer, which
			// returns.
			l.watchdog.Stop()
			l.armed = time.Time{}
			if l.ckTimer != nil {
				l.ckTimer.Stop()
			}
			l.syncClosed = true
			l.syncWake.Signal()
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

// A chainState is where the decision log's chain stands.
type chainState struct {
	Head decisionlog.Head
	// Signer is the checkpoint key's fingerprint; "" when checkpoints
	// are off. Checkpoint is the head the last one signed, written at
	// CheckpointAt (zero before the first).
	Signer       string
	Checkpoint   decisionlog.Head
	CheckpointAt time.Time
}

// Chain returns where the log's chain stands.
func (l *decisionLog) Chain() chainState {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := chainState{Head: l.head}
	if l.signer != nil {
		c.Signer = l.signer.Fingerprint()
		c.Checkpoint = l.lastCkHead
		if !l.lastCkHead.Hash.IsZero() {
			c.CheckpointAt = l.lastCk.UTC()
		}
	}
	return c
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

// failing reports whether the latest write failed, or one is stuck.
// Called with l.mu held.
func (l *decisionLog) failing() bool { return l.writeErr.Load() != nil }

// note records the outcome of a write and logs changes of state only, so a
// failing disk does not flood the operational log. Called with l.mu held.
func (l *decisionLog) note(err error) {
	switch {
	case err != nil && !l.failing():
		msg := err.Error()
		l.writeErr.Store(&msg)
		l.say(func() { l.logger.Error("decision log write failed; answering 503 until it recovers", "err", err) })
	case err != nil:
		if msg := err.Error(); msg != l.Err() {
			l.writeErr.Store(&msg)
		}
	case l.failing():
		l.writeErr.Store(nil)
		l.say(func() { l.logger.Info("decision log writes recovered") })
	}
}
