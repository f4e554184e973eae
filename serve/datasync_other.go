//go:build !linux

package serve

import "os"

// datasync flushes f to stable storage; fdatasync(2) where the system has
// it (see datasync_linux.go).
func datasync(f *os.File) error { return f.Sync() }
