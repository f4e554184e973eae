package e2e

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The tests run as root, in CI too, and root writes to a file whatever its
// mode: chmod 000 makes nothing unwritable. These faults fail writes for
// root as well:
//
//   - the immutable attribute (chattr +i, FS_IOC_SETFLAGS): writes to a
//     file already open fail with EPERM, root's included, until it is
//     cleared; it needs a file system that has it (ext4, xfs, btrfs,
//     tmpfs since Linux 6.0), else the case is skipped;
//   - a file size limit (RLIMIT_FSIZE set on the server with prlimit): a
//     write past it fails with EFBIG, and one that crosses it is cut
//     short, leaving a torn line;
//   - a pipe whose reader went away (a log shipper that died): EPIPE.
func platformLogFaults() []logFault {
	return []logFault{immutableFault(), fileSizeFault(), pipeFault()}
}

const (
	fsIocGetflags = 0x80086601
	fsIocSetflags = 0x40086602
	fsImmutableFl = 0x10
)

// setImmutable sets or clears the immutable attribute of path.
func setImmutable(path string, on bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var flags int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
		return e
	}
	if on {
		flags |= fsImmutableFl
	} else {
		flags &^= fsImmutableFl
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocSetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
		return e
	}
	return nil
}

func immutableFault() logFault {
	return logFault{
		name:    "file made immutable (chattr +i)",
		prepare: func(t *testing.T, s *server) []string { return nil },
		inject: func(t *testing.T, s *server, _ int) {
			t.Cleanup(func() { setImmutable(s.Log, false) }) // or TempDir cannot remove it
			if err := setImmutable(s.Log, true); err != nil {
				if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EPERM) {
					t.Skipf("the file system of %s cannot make a file immutable: %v", s.Log, err)
				}
				t.Fatal(err)
			}
		},
		heal: func(t *testing.T, s *server, _ int) {
			if err := setImmutable(s.Log, false); err != nil {
				t.Fatal(err)
			}
		},
		logFiles: func(t *testing.T, s *server, _ int) []string { return []string{s.Log} },
	}
}

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid; the hard
// limit stays unlimited, so it can be raised again.
func setFileSizeLimit(pid int, limit uint64) error {
	lim := syscall.Rlimit{Cur: limit, Max: ^uint64(0)}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// tornAt is how many bytes of the first failing batch fit under the file
// size limit: a torn line.
const tornAt = 37

func fileSizeFault() logFault {
	return logFault{
		name:    "file size limit (RLIMIT_FSIZE)",
		prepare: func(t *testing.T, s *server) []string { return nil },
		inject: func(t *testing.T, s *server, _ int) {
			fi, err := os.Stat(s.Log)
			if err != nil {
				t.Fatal(err)
			}
			if err := setFileSizeLimit(s.cmd.Process.Pid, uint64(fi.Size())+tornAt); err != nil {
				t.Fatalf("prlimit: %v", err)
			}
		},
		heal: func(t *testing.T, s *server, _ int) {
			if err := setFileSizeLimit(s.cmd.Process.Pid, ^uint64(0)); err != nil {
				t.Fatalf("prlimit: %v", err)
			}
		},
		logFiles: func(t *testing.T, s *server, _ int) []string { return []string{s.Log} },
		torn:     1,
	}
}

// A pipeReader is the reading end of a named pipe, the way a log shipper
// reads a decision log, copying what it reads to a file.
type pipeReader struct {
	f    *os.File
	done chan struct{}
}

func openPipeReader(t *testing.T, fifo string, out *os.File) *pipeReader {
	t.Helper()
	// O_RDWR: a read never sees end of file while the server has yet to
	// open its end. Nonblocking: Close wakes a read in progress.
	fd, err := syscall.Open(fifo, syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeReader{f: os.NewFile(uintptr(fd), fifo), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// A plain loop: out.ReadFrom would try splice(2).
		buf := make([]byte, 32<<10)
		for {
			n, err := p.f.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func pipeFault() logFault {
	var (
		mu     sync.Mutex
		reader *pipeReader
		out    *os.File
	)
	return logFault{
		name: "pipe reader gone (EPIPE)",
		prepare: func(t *testing.T, s *server) []string {
			s.Log = filepath.Join(s.Dir, "decisions.pipe")
			if err := syscall.Mkfifo(s.Log, 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			out, err = os.Create(filepath.Join(s.Dir, "shipped.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { out.Close() })
			reader = openPipeReader(t, s.Log, out)
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				if reader != nil {
					reader.f.Close()
				}
			})
			return nil
		},
		inject: func(t *testing.T, s *server, decisions int) {
			// Every decision answered so far went into the pipe: let the
			// reader copy them all, then go away.
			mu.Lock()
			defer mu.Unlock()
			waitLines(t, out.Name(), decisions)
			reader.f.Close()
			<-reader.done
			reader = nil
		},
		heal: func(t *testing.T, s *server, _ int) {
			mu.Lock()
			defer mu.Unlock()
			reader = openPipeReader(t, s.Log, out)
		},
		logFiles: func(t *testing.T, s *server, decisions int) []string {
			waitLines(t, out.Name(), decisions)
			return []string{out.Name()}
		},
	}
}

// waitLines waits until file has at least n lines.
func waitLines(t *testing.T, file string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for bytes.Count(readFile(t, file), []byte("\n")) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines within %s, want %d", file, bytes.Count(readFile(t, file), []byte("\n")), waitTimeout, n)
		}
		time.Sleep(5 * time.Millisecond) // polling a copy in progress, with a deadline
	}
}
