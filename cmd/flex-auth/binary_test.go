package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the flex-auth binary the tests that run it as a process share:
// it is built once per test run, not once per test.
var built struct {
	once      sync.Once
	dir, path string
	err       error
	out       []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// flexAuthBinary returns the path of a flex-auth built from this package,
// building it on first use. It skips the test with -short.
func flexAuthBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the flex-auth binary; skipped with -short")
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "flex-auth-test-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "flex-auth")
		built.out, built.err = exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build ./cmd/flex-auth: %v\n%s", built.err, built.out)
	}
	return built.path
}
