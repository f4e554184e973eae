package e2e

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// A hungFS is a FUSE file system, served by the test, whose files can be
// made to stop answering the way a network file system does when its
// server goes away: an open, read or write of a hung file blocks in the
// kernel, in an uninterruptible system call as far as the server process
// can tell, until the test releases it. It needs /dev/fuse and the right
// to mount (the tests run as root); without them the test is skipped.
type hungFS struct {
	Dir   string
	files map[string]*hungFile
}

// A hungFile is one file of a hungFS, held in memory.
type hungFile struct {
	fs.Inode
	mu      sync.Mutex
	data    []byte
	hung    chan struct{} // non-nil: operations wait until it is closed
	entered chan struct{} // closed when an operation waits on hung
}

var (
	_ fs.NodeOpener    = (*hungFile)(nil)
	_ fs.NodeReader    = (*hungFile)(nil)
	_ fs.NodeWriter    = (*hungFile)(nil)
	_ fs.NodeGetattrer = (*hungFile)(nil)
	_ fs.NodeSetattrer = (*hungFile)(nil)
	_ fs.NodeFsyncer   = (*hungFile)(nil)
)

// hang makes the file stop answering; entered is closed when a system
// call on it blocks.
func (f *hungFile) hang() (entered <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hung, f.entered = make(chan struct{}), make(chan struct{})
	return f.entered
}

// release lets the system calls blocked on the file return.
func (f *hungFile) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hung != nil {
		close(f.hung)
		f.hung = nil
	}
}

// Data returns the file's contents.
func (f *hungFile) Data() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...)
}

// SetData replaces the file's contents.
func (f *hungFile) SetData(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = append([]byte(nil), b...)
}

// wait blocks while the file is hung.
func (f *hungFile) wait(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	hung, entered := f.hung, f.entered
	f.mu.Unlock()
	if hung == nil {
		return 0
	}
	select {
	case <-entered:
	default:
		close(entered)
	}
	select {
	case <-hung:
		return 0
	case <-ctx.Done(): // the kernel gave up on the call: the process died
		return syscall.EINTR
	}
}

func (f *hungFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := f.wait(ctx); errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		f.SetData(nil)
	}
	// Direct I/O: every read and write reaches the file system, as
	// on a network file system without a cache.
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *hungFile) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := f.wait(ctx); errno != 0 {
		return nil, errno
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, f.data[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *hungFile) Write(ctx context.Context, _ fs.FileHandle, p []byte, off int64) (uint32, syscall.Errno) {
	if errno := f.wait(ctx); errno != 0 {
		return 0, errno
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
	}
	copy(f.data[off:], p)
	return uint32(len(p)), 0
}

func (f *hungFile) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	out.Mode = syscall.S_IFREG | 0o644
	out.Size = uint64(len(f.data))
	return 0
}

func (f *hungFile) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		f.mu.Lock()
		f.data = f.data[:min(int(size), len(f.data))]
		f.mu.Unlock()
	}
	return f.Getattr(ctx, nil, out)
}

func (f *hungFile) Fsync(ctx context.Context, _ fs.FileHandle, _ uint32) syscall.Errno {
	return f.wait(ctx)
}

// hungRoot is the root directory of a hungFS.
type hungRoot struct {
	fs.Inode
	files map[string]*hungFile
}

func (r *hungRoot) OnAdd(ctx context.Context) {
	for name, f := range r.files {
		r.AddChild(name, r.NewPersistentInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG}), false)
	}
}

// mountHungFS mounts a hungFS holding files (name to contents) in a new
// directory, and unmounts it when the test ends, after everything the
// test started has stopped (register it before starting the server).
func mountHungFS(t *testing.T, files map[string][]byte) *hungFS {
	t.Helper()
	h := &hungFS{Dir: t.TempDir(), files: map[string]*hungFile{}}
	for name, data := range files {
		h.files[name] = &hungFile{data: append([]byte(nil), data...)}
	}
	srv, err := fs.Mount(h.Dir, &hungRoot{files: h.files}, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMount: true, Name: "flexauth-e2e-hungfs"},
	})
	if err != nil {
		t.Skipf("cannot mount a FUSE file system to play a hung one (needs /dev/fuse and root): %v", err)
	}
	t.Cleanup(func() {
		for _, f := range h.files {
			f.release()
		}
		if err := srv.Unmount(); err != nil {
			// A process killed by the test may still have held a file.
			if err := syscall.Unmount(h.Dir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				t.Logf("unmount %s: %v", h.Dir, err)
			}
		}
	})
	return h
}

// File returns the named file.
func (h *hungFS) File(name string) *hungFile { return h.files[name] }

// Path returns the path of the named file.
func (h *hungFS) Path(name string) string { return h.Dir + string(os.PathSeparator) + name }
