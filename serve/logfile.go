package serve

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// A LogFile is a decision log file opened for appending. The decision log
// reopens its path on SIGHUP, so that logrotate can move the old file
// away; Sync flushes it to disk. Only the decision log's writer goroutine
// writes, syncs or switches it, which keeps it free of locks.
type LogFile struct {
	path string
	f    *os.File
}

// OpenLogFile opens path for appending, creating it (mode 0640) if needed.
// It does not wait for a reader when path is a FIFO: with none, it fails.
func OpenLogFile(path string) (*LogFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	if err := endLine(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return &LogFile{path: path, f: f}, nil
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

// reopenFile opens the path again, for use. It touches nothing the writer
// uses, so any goroutine may call it, and it may block on a file system
// that stopped answering.
func (f *LogFile) reopenFile() (*os.File, error) { return openAppend(f.path) }

// use switches to nf, opened by reopenFile, and returns the old file for
// the caller to close. When nf's cut-short last line cannot be ended, nf
// is closed and the old file stays in use.
func (f *LogFile) use(nf *os.File) (old *os.File, err error) {
	if err := endLine(nf, f.path); err != nil {
		nf.Close()
		return nil, err
	}
	old, f.f = f.f, nf
	return old, nil
}

// Close closes the file.
func (f *LogFile) Close() error { return f.f.Close() }

// Path returns the file's path.
func (f *LogFile) Path() string { return f.path }
