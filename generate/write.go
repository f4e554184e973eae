package generate

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coulomb/flex-auth/registry"
)

// WriteFile writes the canonical form of s to path atomically: readers see
// the old file or the new one, never a part, and a failure leaves the old
// file as it was. The new file keeps the old one's permissions, or gets
// 0644. When path is a symbolic link, the file it points to is replaced.
func WriteFile(path string, s *registry.Snapshot) error {
	// Streamed: a 100,000-actor snapshot is 25 MB that need not be held.
	err := writeAtomic(path, func(w io.Writer) error {
		_, err := s.WriteCanonical(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return nil
}

// writeAtomic replaces path with what write writes, through a temporary
// file in the same directory.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("not a regular file")
		}
		mode = fi.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable. Some file systems cannot sync a
	// directory; the file is in place by now, so that is not a failure.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
