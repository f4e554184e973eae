package serve

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/coulomb/flex-auth/decisionlog"
)

// A LogFile is a decision log file opened for appending. The decision log
// reopens its path on SIGHUP, so that logrotate can move the old file
// away; Sync flushes it to disk. Only the decision log's leader writes,
// syncs or switches it, which keeps it free of locks.
type LogFile struct {
	path string
	f    *os.File
	// head is where the file's chain stood when it was opened.
	head decisionlog.Head
}

// OpenLogFile opens path for appending, creating it (mode 0640) if needed.
// It does not wait for a reader when path is a FIFO: with none, it fails.
// A regular file that is not empty is read from its end, so that the
// decision log continues its chain, and a fragment a crash left there is
// ended (see endLine); a file that cannot be read is an error.
func OpenLogFile(path string) (*LogFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	tail, err := endLine(f, path, nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &LogFile{path: path, f: f, head: tail}, nil
}

// openAppend opens path for appending without blocking in open(2) on a
// FIFO that has no reader yet (O_NONBLOCK makes that ENXIO). A FIFO or
// pipe stays nonblocking, which Go's poller handles: a write waits for
// the reader without holding a thread. On a regular file the flag does
// nothing.
func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o640)
	if errors.Is(err, syscall.ENXIO) {
		return nil, fmt.Errorf("open %s: a FIFO that no process reads; start its reader first", path)
	}
	return f, err
}

// endLine reads the end of f, opened for appending at path, and returns
// where its chain stands. When f is a regular file whose last byte is not
// a newline (the fragment a crash in the middle of a write left: a
// SIGKILL can cut a write(2) at a page boundary), it ends the fragment
// (decisionlog.AppendTornEnd), so that it stays a line of its own that
// does not parse rather than swallowing the first record written after
// it, and returns the head after it. The chain stands at head when it is
// set (a file reopened by a running decision log, which knows its chain),
// else where the file's last lines say. The end is read through a second,
// read-only descriptor of the same file. A FIFO or pipe, or an empty
// file, is not read: the chain stands at head, or starts anew.
func endLine(f *os.File, path string, head *decisionlog.Head) (decisionlog.Head, error) {
	var h decisionlog.Head
	if head != nil {
		h = *head
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return h, nil
	}
	r, err := os.Open(path)
	if err != nil {
		return h, fmt.Errorf("read the end of %s to continue its hash chain: %w", path, err)
	}
	defer r.Close()
	ri, err := r.Stat()
	if err != nil || !os.SameFile(fi, ri) || ri.Size() == 0 {
		return h, nil // replaced meanwhile: nothing of it is ours to read
	}
	tail, err := decisionlog.ReadTail(r, ri.Size())
	if err != nil {
		return h, fmt.Errorf("read the end of %s to continue its hash chain: %w", path, err)
	}
	if head == nil {
		h = tail.Head
	}
	if len(tail.Fragment) == 0 {
		return h, nil
	}
	end := decisionlog.AppendTornEnd(nil, h)
	if _, err := f.Write(end); err != nil {
		return h, fmt.Errorf("end the cut-short last line of %s: %w", path, err)
	}
	h.Hash = joinHash(tail.Fragment, end)
	return h, nil
}

// Write appends p with one write(2): O_APPEND keeps concurrent writers from
// interleaving inside it.
func (f *LogFile) Write(p []byte) (int, error) { return f.f.Write(p) }

// Sync flushes the lines written to stable storage (fdatasync on Linux).
func (f *LogFile) Sync() error { return datasync(f.f) }

// reopenFile opens the path again, for use. It touches nothing the writer
// uses, so any goroutine may call it, and it may block on a file system
// that stopped answering.
func (f *LogFile) reopenFile() (*os.File, error) { return openAppend(f.path) }

// use switches to nf, opened by reopenFile, and returns the old file for
// the caller to close, and the chain's head in nf: head, or past the end
// of a cut-short last line of nf. When that line cannot be ended, nf is
// closed and the old file stays in use.
func (f *LogFile) use(nf *os.File, head decisionlog.Head) (old *os.File, h decisionlog.Head, err error) {
	if h, err = endLine(nf, f.path, &head); err != nil {
		nf.Close()
		return nil, head, err
	}
	old, f.f = f.f, nf
	return old, h, nil
}

// Close closes the file.
func (f *LogFile) Close() error { return f.f.Close() }

// Path returns the file's path.
func (f *LogFile) Path() string { return f.path }
