package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// ErrLogClosed is returned for a decision that arrives after the decision
// log was closed at shutdown.
var ErrLogClosed = errors.New("decision log closed")

// maxBatch bounds the bytes one group commit writes, so that one write(2)
// stays short under a flood.
const maxBatch = 1 << 20

// tornEnd ends a line whose write was cut short, before the next line is
// written. Whatever the fragment before it, the line is then not JSON: the
// quote either ends a string, and a backslash cannot follow, or starts
// one, and backslash-space is no escape. So even a fragment that is a
// whole object, cut just before its newline, is never read as a decision,
// which nobody was given.
const tornEnd = `"\ <- cut short: not a decision` + "\n"

// A logEntry is one decision line on its way to the log. Entries are pooled
// with their request's buffers, reply channel included: the hot path
// allocates neither.
type logEntry struct {
	line []byte     // ends in '\n'
	errc chan error // cap 1; a leader answers every entry it writes
}

// errLead answers a waiting entry with the lead instead of an outcome: the
// entry's handler now writes everything waiting, its own line included.
var errLead = errors.New("decision log: lead the next batch")

// decisionLog writes decision lines with group commit and no goroutine of
// its own (leader/follower). The handler that finds the log idle becomes
// the leader: it writes its line itself, with one write(2) (and an fsync
// when fsync is set), and returns. Handlers that arrive while a leader
// writes queue their lines and wait; when the leader is done, it answers
// its batch and passes the lead to the first waiting handler, which writes
// everything queued in one batch. A lone request costs no goroutine switch
// (a writer goroutine cost two, and at low load the wake-up of a second
// thread); under load, one write serves everything that queued during the
// previous one, and each handler leads at most once, so no decision waits
// behind more than two batches. Only the leader touches the file, so
// reopening needs no lock against writing: Reopen takes the lead too.
type decisionLog struct {
	w      io.Writer
	fsync  func() error // nil: no fsync
	logger *slog.Logger
	// onError counts a failed line; the server increments a metric.
	onError func(n int)

	mu      sync.Mutex
	pending []*logEntry  // waiting for the next batch, in arrival order
	reopens []chan error // Reopen calls waiting for the lead
	busy    bool         // a leader holds the file
	closed  bool
	idle    sync.Cond // broadcast when busy turns false

	// queued counts entries waiting for a batch; tests wait on it.
	queued atomic.Int64

	// lastErr holds the error of the latest write when it failed, nil
	// when it succeeded; /healthz shows it.
	lastErr atomic.Pointer[string]

	// Owned by the leader.
	batch []byte
	held  []*logEntry
	// torn is set when a failed write left part of a batch in the file:
	// the next batch starts with tornEnd, so the fragment stays a line of
	// its own that does not parse, rather than corrupting the next one.
	torn    bool
	failing bool
}

// A Reopener is a decision log that can reopen its file, after logrotate
// moved it. LogFile is one.
type Reopener interface {
	Reopen() error
}

// A Syncer is a decision log that can flush to stable storage.
type Syncer interface {
	Sync() error
}

func newDecisionLog(w io.Writer, doSync bool, logger *slog.Logger, onError func(int)) *decisionLog {
	l := &decisionLog{
		w:       w,
		logger:  logger,
		onError: onError,
		batch:   make([]byte, 0, 64<<10),
	}
	l.idle.L = &l.mu
	if s, ok := w.(Syncer); ok && doSync {
		l.fsync = s.Sync
	}
	return l
}

// write puts e's line in the log and returns when it is written (and
// synced), or the write failed. The caller keeps ownership of e.
func (l *decisionLog) write(e *logEntry) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLogClosed
	}
	l.pending = append(l.pending, e)
	l.queued.Add(1)
	if l.busy {
		l.mu.Unlock()
		if err := <-e.errc; err != errLead {
			return err
		}
		l.mu.Lock()
	}
	l.busy = true
	return l.lead(e)
}

// lead writes the pending lines (up to maxBatch bytes), then passes the
// lead on or leaves the log idle. It is called with l.mu held and busy
// set, and returns with l.mu released. self, the leader's own entry, is
// always first in line; its outcome is returned rather than sent.
func (l *decisionLog) lead(self *logEntry) error {
	reopens := l.reopens
	l.reopens = nil
	n, size := 0, 0
	for n < len(l.pending) && (n == 0 || size+len(l.pending[n].line) <= maxBatch) {
		size += len(l.pending[n].line)
		n++
	}
	l.held = append(l.held[:0], l.pending[:n]...)
	rest := copy(l.pending, l.pending[n:])
	clear(l.pending[rest:])
	l.pending = l.pending[:rest]
	l.queued.Add(-int64(n))
	l.mu.Unlock()

	// Whatever happens below, answer the batch and hand the lead on: a
	// leader that did not would stall every later decision. (safeWrite
	// already turns a panicking writer into an error; this covers a
	// panicking Reopen or Sync of a custom log.)
	defer func() {
		if v := recover(); v != nil {
			perr := fmt.Errorf("decision log panicked: %v", v)
			for _, e := range l.held {
				if e != nil && e != self {
					e.errc <- perr
				}
			}
			l.held = l.held[:0]
			l.release()
			panic(v)
		}
		l.release()
	}()
	for _, errc := range reopens {
		errc <- l.reopen()
	}
	err := l.commit()
	var own error
	for i, e := range l.held {
		if e == self {
			own = err
		} else {
			e.errc <- err
		}
		l.held[i] = nil
	}
	l.held = l.held[:0]
	return own
}

// release passes the lead to the first waiting handler, or does the
// Reopen calls still waiting and marks the log idle.
func (l *decisionLog) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		l.pending[0].errc <- errLead
		return
	}
	for _, errc := range l.reopens {
		errc <- l.reopen()
	}
	l.reopens = nil
	l.busy = false
	l.idle.Broadcast()
}

// reopen reopens the file; only the leader calls it.
func (l *decisionLog) reopen() error {
	err := l.w.(Reopener).Reopen()
	if err == nil {
		l.torn = false // a new file starts clean
	}
	return err
}

// Reopen reopens the file between two batches.
func (l *decisionLog) Reopen() error {
	if _, ok := l.w.(Reopener); !ok {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLogClosed
	}
	if l.busy {
		// The current leader, or the next, reopens before its batch.
		errc := make(chan error, 1)
		l.reopens = append(l.reopens, errc)
		l.mu.Unlock()
		return <-errc
	}
	l.busy = true
	l.mu.Unlock()
	defer l.release()
	return l.reopen()
}

// Close waits until the lines already queued are written; decisions that
// arrive later get ErrLogClosed.
func (l *decisionLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for l.busy {
		l.idle.Wait()
	}
	return nil
}

// Err returns the latest write error, or "".
func (l *decisionLog) Err() string {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// commit writes the held lines with one write, and an fsync when set, and
// returns the outcome.
func (l *decisionLog) commit() error {
	l.batch = l.batch[:0]
	if l.torn {
		l.batch = append(l.batch, tornEnd...)
	}
	for _, e := range l.held {
		l.batch = append(l.batch, e.line...)
	}
	n, err := safeWrite(l.w, l.batch)
	if err == nil && n < len(l.batch) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			l.torn = l.batch[min(n, len(l.batch))-1] != '\n'
		}
	} else {
		l.torn = false
		if l.fsync != nil {
			err = l.fsync()
		}
	}
	l.note(err)
	if err != nil && l.onError != nil {
		l.onError(len(l.held))
	}
	if cap(l.batch) > 4*maxBatch {
		l.batch = make([]byte, 0, 64<<10)
	}
	return err
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

// note records the outcome of a write and logs changes of state only, so a
// failing disk does not flood the operational log.
func (l *decisionLog) note(err error) {
	switch {
	case err != nil && !l.failing:
		l.failing = true
		msg := err.Error()
		l.lastErr.Store(&msg)
		l.logger.Error("decision log write failed; answering 503 until it recovers", "err", err)
	case err != nil:
		if msg := err.Error(); msg != l.Err() {
			l.lastErr.Store(&msg)
		}
	case l.failing:
		l.failing = false
		l.lastErr.Store(nil)
		l.logger.Info("decision log writes recovered")
	}
}

// A LogFile is a decision log file opened for appending. Reopen opens the
// path again, so that logrotate can move the old file away; Sync flushes it
// to disk. It is used by one goroutine at a time (the decision log's
// leader), which keeps it free of locks.
type LogFile struct {
	path string
	f    *os.File
}

// OpenLogFile opens path for appending, creating it (mode 0640) if needed.
func OpenLogFile(path string) (*LogFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &LogFile{path: path, f: f}, nil
}

// openAppend opens path for appending and ends a cut-short last line, so
// that every line written afterwards is a line of its own.
func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := endLine(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// endLine appends tornEnd to f, opened for appending at path, when f is a
// regular file whose last byte is not a newline: the fragment a crash in
// the middle of a write left (a SIGKILL can cut a write(2) at a page
// boundary). The fragment then stays a line of its own that does not
// parse, rather than swallowing the first decision written after it. The last byte is
// read through a second, read-only descriptor of the same file; when the
// file cannot be read, it is left as it is.
func endLine(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer r.Close()
	ri, err := r.Stat()
	if err != nil || !os.SameFile(fi, ri) || ri.Size() == 0 {
		return nil
	}
	var last [1]byte
	if _, err := r.ReadAt(last[:], ri.Size()-1); err != nil || last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte(tornEnd)); err != nil {
		return fmt.Errorf("end the cut-short last line of %s: %w", path, err)
	}
	return nil
}

// Write appends p with one write(2): O_APPEND keeps concurrent writers from
// interleaving inside it.
func (f *LogFile) Write(p []byte) (int, error) { return f.f.Write(p) }

// Sync flushes the lines written to stable storage (fdatasync on Linux).
func (f *LogFile) Sync() error { return datasync(f.f) }

// Reopen opens the path again and closes the old file. When the path
// cannot be opened, the old file stays in use.
func (f *LogFile) Reopen() error {
	nf, err := openAppend(f.path)
	if err != nil {
		return err
	}
	old := f.f
	f.f = nf
	return old.Close()
}

// Close closes the file.
func (f *LogFile) Close() error { return f.f.Close() }

// Path returns the file's path.
func (f *LogFile) Path() string { return f.path }
