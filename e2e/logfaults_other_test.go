//go:build !linux

package e2e

// platformLogFaults are the Linux-only ways to fail decision log writes;
// elsewhere only /dev/full, where it exists, is tried.
func platformLogFaults() []logFault { return nil }
