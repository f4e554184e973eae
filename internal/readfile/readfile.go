// Package readfile reads the files flex-auth is given (registry
// snapshots, policy packages, inventories, TLS certificates and keys, a
// GitHub event) the one safe way: only a regular file is read, and never
// more of it than the cap of its kind.
//
// A path can name something that is not a file: a FIFO, whose open(2)
// blocks until a writer comes and whose read blocks until it writes; a
// device such as /dev/zero or /dev/urandom, which never ends; a socket; a
// directory. Read refuses each with one line naming the path and what it
// is, without blocking and without reading from it. A regular file larger
// than its kind's cap (a runaway generator, a file that is not what its
// name says) is refused before it is read, or as soon as a read passes the
// cap when the file grows meanwhile, never buffered whole.
package readfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// A Kind is a kind of file flex-auth reads, with the most of it it reads.
type Kind struct {
	// Name says what the file is, in messages: "registry snapshot".
	Name string
	// Max is the largest file of the kind, in bytes.
	Max int64
}

// The caps, one per kind of file, wherever the file comes from: the same
// registry snapshot cap applies to a file, to GET /v1/registry as drift
// and check read it, and to any other source of one. Each is many times
// the largest file flex-auth is meant to read, and small enough that a
// file at the cap is a mistake to refuse rather than memory to spend.
// docs/guarantees.md lists them.
const (
	// MaxRegistryBytes caps a registry snapshot: 64 MiB, about two and a
	// half times the canonical snapshot of 100,000 actors (26 MB).
	MaxRegistryBytes = 64 << 20
	// MaxPolicyBytes caps a policy package: 4 MiB; the ops-warden package
	// is 5 KB, and one rule's when is at most a few KB.
	MaxPolicyBytes = 4 << 20
	// MaxInventoryBytes caps an ops-warden inventory: 64 MiB; 100,000
	// actors take about 5 MB.
	MaxInventoryBytes = 64 << 20
	// MaxPEMBytes caps a TLS certificate (chain), key or CA bundle:
	// 1 MiB; a system's whole CA bundle is about 200 KB.
	MaxPEMBytes = 1 << 20
	// MaxEntitiesBytes caps an entities document, the data of an AuthZEN
	// policy package: 64 MiB, as a registry snapshot.
	MaxEntitiesBytes = 64 << 20
	// MaxGitHubEventBytes caps the event file of a GitHub Actions run
	// ($GITHUB_EVENT_PATH): 32 MiB; GitHub caps a webhook payload at
	// 25 MB.
	MaxGitHubEventBytes = 32 << 20
)

// The kinds of file, with their caps.
var (
	Registry    = Kind{"registry snapshot", MaxRegistryBytes}
	Policy      = Kind{"policy package", MaxPolicyBytes}
	Entities    = Kind{"entities document", MaxEntitiesBytes}
	Inventory   = Kind{"inventory", MaxInventoryBytes}
	PEM         = Kind{"PEM file", MaxPEMBytes}
	GitHubEvent = Kind{"GitHub event file", MaxGitHubEventBytes}
)

// ErrNotRegular reports a path that names something other than a regular
// file (after following symbolic links).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge reports a file over its kind's cap. The errors that match
// it say the cap and the kind: "larger than 64 MiB, the registry snapshot
// limit".
var ErrTooLarge = errors.New("larger than the limit")

// Read returns the content of the regular file at path, of kind k. Errors
// are *fs.PathError naming path: what open(2) says, ErrNotRegular when
// path is a FIFO, a device, a socket or a directory, ErrTooLarge when the
// file holds more than k.Max bytes. Each is one line.
func Read(path string, k Kind) ([]byte, error) {
	f, size, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > k.Max {
		return nil, tooLarge(path, k)
	}
	data, err := limit(f, size, k)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return data, nil
}

// open opens path for reading when it is a regular file, and returns the
// file and its size; otherwise it returns an *fs.PathError naming path.
//
// Path is looked at (stat, following symbolic links) before it is opened,
// so that nothing else is ever opened: opening some devices does
// something (a tape rewinds, a modem line is raised). What is opened is
// checked again through its descriptor (fstat), the check that decides:
// path may have been swapped in between. The open is nonblocking, so that
// a FIFO swapped in then cannot block it before fstat refuses it.
func open(path string) (*os.File, int64, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, 0, notRegular(path, fi.Mode())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			// open(2) of a socket; stat it again only to say so.
			if fi, serr := os.Stat(path); serr == nil && !fi.Mode().IsRegular() {
				return nil, 0, notRegular(path, fi.Mode())
			}
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, notRegular(path, fi.Mode())
	}
	// A regular file is read the ordinary way: a FUSE file system sees
	// the flag, and may answer a read that would wait with EAGAIN.
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, 0, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return f, fi.Size(), nil
}

// ReadAll reads r, the content of a file of kind k (an HTTP body, standard
// input), refusing more than k.Max bytes without reading more than
// k.Max+1. The error wraps ErrTooLarge with the cap, or is r's.
func ReadAll(r io.Reader, k Kind) ([]byte, error) { return limit(r, 0, k) }

// limit reads r, of expected size (0 when unknown), into one buffer of
// the right size, and stops after k.Max+1 bytes.
func limit(r io.Reader, expect int64, k Kind) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(min(expect, k.Max)) + 512) // + 512 to see EOF without growing
	_, err := buf.ReadFrom(io.LimitReader(r, k.Max+1))
	if err != nil {
		return nil, err
	}
	if int64(buf.Len()) > k.Max {
		return nil, &limitError{k}
	}
	return buf.Bytes(), nil
}

func tooLarge(path string, k Kind) error {
	return &fs.PathError{Op: "read", Path: path, Err: &limitError{k}}
}

// A limitError is ErrTooLarge for a file of its kind.
type limitError struct{ k Kind }

func (e *limitError) Error() string {
	return "larger than " + size(e.k.Max) + ", the " + e.k.Name + " limit"
}

func (e *limitError) Is(target error) bool { return target == ErrTooLarge }

// size formats a cap: "64 MiB", "512 KiB", "100 bytes".
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// notRegular is the error for path, which is of mode m, not a regular
// file.
func notRegular(path string, m fs.FileMode) error {
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%s, %w", describe(m), ErrNotRegular)}
}

// describe says what a file of mode m is.
func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}
