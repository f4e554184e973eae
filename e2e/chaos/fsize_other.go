//go:build !linux

package chaos

import "errors"

// setFileSizeLimit needs prlimit(2), which only Linux has: the decision
// log fault is skipped elsewhere.
func setFileSizeLimit(pid int, limit uint64) error { return errors.ErrUnsupported }
