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

// A logEntry is one decision line on its way to the log. Entries are pooled
// with their request's buffers, reply channel included: the hot path
// allocates neither.
type logEntry struct {
	line []byte     // ends in '\n'
	errc chan error // cap 1; the writer answers every entry it takes
}

// decisionLog writes decision lines with group commit: requests hand their
// line to one writer goroutine, which writes everything waiting with a
// single write(2) (and an fsync when fsync is set), then answers all of them.
// Every file operation happens on that goroutine, so reopening needs no
// lock against writing.
type decisionLog struct {
	w      io.Writer
	fsync  func() error // nil: no fsync
	logger *slog.Logger
	// onError counts a failed line; the server increments a metric.
	onError func(n int)

	queue   chan *logEntry // unbuffered: a send succeeds only when taken
	reopen  chan chan error
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	// queued counts entries handed to write but not yet taken by the
	// writer; tests wait on it.
	queued atomic.Int64

	// lastErr holds the error of the latest write when it failed, nil
	// when it succeeded; /healthz shows it.
	lastErr atomic.Pointer[string]

	// Owned by the writer goroutine.
	batch []byte
	held  []*logEntry
	// torn is set when a failed write left part of a batch in the file:
	// the next batch starts with a newline, so the fragment stays a line
	// of its own that does not parse, rather than corrupting the next one.
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
		queue:   make(chan *logEntry),
		reopen:  make(chan chan error),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		batch:   make([]byte, 0, 64<<10),
	}
	if s, ok := w.(Syncer); ok && doSync {
		l.fsync = s.Sync
	}
	go l.run()
	return l
}

// write hands e to the writer and waits until its line is in the file (or
// the write failed). The caller keeps ownership of e.
func (l *decisionLog) write(e *logEntry) error {
	l.queued.Add(1)
	select {
	case l.queue <- e:
	case <-l.stopped:
		l.queued.Add(-1)
		return ErrLogClosed
	}
	return <-e.errc
}

// take records that the writer took an entry off the queue.
func (l *decisionLog) take(e *logEntry) *logEntry {
	l.queued.Add(-1)
	return e
}

// Reopen asks the writer to reopen the file, between two batches.
func (l *decisionLog) Reopen() error {
	if _, ok := l.w.(Reopener); !ok {
		return nil
	}
	errc := make(chan error, 1)
	select {
	case l.reopen <- errc:
	case <-l.stopped:
		return ErrLogClosed
	}
	return <-errc
}

// Close writes what is queued and stops the writer. Decisions that arrive
// later get ErrLogClosed.
func (l *decisionLog) Close() error {
	l.once.Do(func() { close(l.stop) })
	<-l.stopped
	return nil
}

// Err returns the latest write error, or "".
func (l *decisionLog) Err() string {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

func (l *decisionLog) run() {
	defer close(l.stopped)
	for {
		select {
		case e := <-l.queue:
			l.commit(l.take(e))
		case errc := <-l.reopen:
			err := l.w.(Reopener).Reopen()
			if err == nil {
				l.torn = false // a new file starts clean
			}
			errc <- err
		case <-l.stop:
			// Handlers still sending rendezvous with these receives;
			// once none is waiting, stopped closes and later ones
			// give up.
			for {
				select {
				case e := <-l.queue:
					l.commit(l.take(e))
					continue
				default:
				}
				return
			}
		}
	}
}

// commit writes e and everything else waiting, up to maxBatch bytes, with
// one write, and answers them all.
func (l *decisionLog) commit(first *logEntry) {
	l.held = append(l.held[:0], first)
	l.batch = l.batch[:0]
	if l.torn {
		l.batch = append(l.batch, '\n')
	}
	l.batch = append(l.batch, first.line...)
gather:
	for len(l.batch) < maxBatch {
		select {
		case e := <-l.queue:
			l.held = append(l.held, l.take(e))
			l.batch = append(l.batch, e.line...)
		default:
			break gather
		}
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
	for i, e := range l.held {
		e.errc <- err
		l.held[i] = nil
	}
	if cap(l.batch) > 4*maxBatch {
		l.batch = make([]byte, 0, 64<<10)
	}
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
// writer), which keeps it free of locks.
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

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Write appends p with one write(2): O_APPEND keeps concurrent writers from
// interleaving inside it.
func (f *LogFile) Write(p []byte) (int, error) { return f.f.Write(p) }

// Sync flushes the file to stable storage.
func (f *LogFile) Sync() error { return f.f.Sync() }

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
