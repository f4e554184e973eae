package chaos

import (
	"syscall"
	"unsafe"
)

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid, leaving the
// hard limit unlimited so that it can be raised again. A write past the
// limit fails with EFBIG, root's too (chmod does not stop root, and the
// Go runtime ignores the SIGXFSZ that comes with it); a write that crosses
// it is cut short, leaving a torn line.
func setFileSizeLimit(pid int, limit uint64) error {
	lim := syscall.Rlimit{Cur: limit, Max: ^uint64(0)}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}
