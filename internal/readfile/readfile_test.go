package readfile

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// special makes a path in dir that is not a regular file, or skips.
func special(t *testing.T, dir, kind string) string {
	t.Helper()
	p := filepath.Join(dir, kind)
	switch kind {
	case "fifo":
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	case "directory":
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	case "socket":
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Skipf("unix socket: %v", err)
		}
		t.Cleanup(func() { ln.Close() })
	case "device":
		if err := os.Symlink("/dev/zero", p); err != nil {
			t.Fatal(err)
		}
	case "link to fifo":
		if err := os.Symlink(special(t, dir, "fifo"), p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestReadRefusesWhatIsNotAFile(t *testing.T) {
	tests := []struct{ kind, says string }{
		{"fifo", "a named pipe (FIFO), not a regular file"},
		{"directory", "a directory, not a regular file"},
		{"socket", "a socket, not a regular file"},
		{"device", "a character device, not a regular file"},
		{"link to fifo", "a named pipe (FIFO), not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			p := special(t, t.TempDir(), tt.kind)
			// A FIFO without a writer would block a plain open(2) and
			// read(2) for good: Read must return at once.
			data, err := Read(p, Registry)
			if err == nil {
				t.Fatalf("read %d bytes, want an error", len(data))
			}
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("got %v, want ErrNotRegular", err)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != p {
				t.Errorf("got %#v, want a *fs.PathError naming %s", err, p)
			}
			if want := "open " + p + ": " + tt.says; err.Error() != want {
				t.Errorf("got %q, want %q", err, want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := Kind{Name: "test file", Max: 100}
	write := func(name string, n int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), n), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("at the cap", func(t *testing.T) {
		data, err := Read(write("full", 100), small)
		if err != nil || len(data) != 100 {
			t.Errorf("got %d bytes, %v; want 100 bytes", len(data), err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		data, err := Read(write("empty", 0), small)
		if err != nil || len(data) != 0 {
			t.Errorf("got %d bytes, %v; want none", len(data), err)
		}
	})
	t.Run("over the cap", func(t *testing.T) {
		p := write("over", 101)
		_, err := Read(p, small)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
		if want := "read " + p + ": larger than 100 bytes, the test file limit"; err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	})
	t.Run("sparse, over the cap", func(t *testing.T) {
		// Refused by its size, before anything is read.
		p := filepath.Join(dir, "sparse")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(Registry.Max + 1); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = Read(p, Registry)
		if want := "read " + p + ": larger than 64 MiB, the registry snapshot limit"; err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
	t.Run("growing past its size", func(t *testing.T) {
		// A file whose size says 0 while it holds more (as /proc files
		// do) is still cut at the cap.
		const p = "/proc/self/maps"
		if _, err := os.Stat(p); err != nil {
			t.Skip(err)
		}
		_, err := Read(p, Kind{Name: "test file", Max: 10})
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Read(filepath.Join(dir, "nothing"), small)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want fs.ErrNotExist", err)
		}
	})
}

func TestReadAll(t *testing.T) {
	small := Kind{Name: "test answer", Max: 4}
	if data, err := ReadAll(strings.NewReader("abcd"), small); err != nil || string(data) != "abcd" {
		t.Errorf("at the cap: got %q, %v", data, err)
	}
	_, err := ReadAll(strings.NewReader("abcde"), small)
	if !errors.Is(err, ErrTooLarge) || err.Error() != "larger than 4 bytes, the test answer limit" {
		t.Errorf("over the cap: got %v", err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{64 << 20: "64 MiB", 512 << 10: "512 KiB", 100: "100 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}
