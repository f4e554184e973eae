package errlist

import (
	"errors"
	"io/fs"
	"testing"
)

func TestList(t *testing.T) {
	first := &fs.PathError{Op: "open", Path: "a", Err: fs.ErrNotExist}
	l := List[*fs.PathError]{first, {Op: "read", Path: "b", Err: fs.ErrPermission}}
	if got, want := l.Error(), "open a: file does not exist\nread b: permission denied"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var err error = l
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("errors.Is does not see the second problem")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != first {
		t.Errorf("errors.As: got %v, want the first problem", pe)
	}
}
