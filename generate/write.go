package generate

import (
	"fmt"
	"io"

	"github.com/coulomb/flex-auth/internal/atomicfile"
	"github.com/coulomb/flex-auth/registry"
)

// WriteFile writes the canonical form of s to path atomically: readers see
// the old file or the new one, never a part, and a failure leaves the old
// file as it was. The new file keeps the old one's permissions, or gets
// 0644. When path is a symbolic link, the file it points to is replaced.
func WriteFile(path string, s *registry.Snapshot) error {
	// Streamed: a 100,000-actor snapshot is 25 MB that need not be held.
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := s.WriteCanonical(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return nil
}
