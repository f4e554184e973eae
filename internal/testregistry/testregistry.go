// Package testregistry runs a real OCI registry for tests: the CNCF
// distribution registry (github.com/distribution/distribution/v3), built
// once from the Go module proxy and cached, started on 127.0.0.1 with its
// storage in a temporary directory.
package testregistry

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The registry the tests run, and where it comes from.
const (
	Module  = "github.com/distribution/distribution/v3/cmd/registry"
	Version = "v3.1.2"
)

// EnvBinary names a registry binary to use instead of building one.
const EnvBinary = "FLEX_AUTH_TEST_REGISTRY"

var binary = sync.OnceValues(build)

// Binary returns the path of the registry binary: $FLEX_AUTH_TEST_REGISTRY
// when set, else the one built from Module@Version into
// ${XDG_CACHE_HOME:-~/.cache}/flex-auth-tools/registry-VERSION, the way
// scripts/release caches its tools. The first build takes about a
// minute; concurrent test binaries wait for one another.
func Binary() (string, error) { return binary() }

func build() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "flex-auth-tools", "registry-"+Version)
	bin := filepath.Join(dir, "registry")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another test binary built it meanwhile
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", Module+"@"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", Module, Version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return bin, nil
}

// A Registry is a running distribution registry.
type Registry struct {
	// Addr is its host:port on 127.0.0.1.
	Addr string
	// Root is its storage directory.
	Root string

	t      testing.TB
	bin    string
	config string
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
}

// Start starts a registry that accepts anonymous pushes and deletes, and
// stops it when the test ends. The test is skipped, saying why, when the
// registry cannot be built (no Go module proxy).
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("the CNCF distribution registry could not be built, so this test cannot run: %v", err)
	}
	r := &Registry{t: t, bin: bin, Root: t.TempDir()}
	r.Addr = freeAddr(t)
	r.config = filepath.Join(t.TempDir(), "config.yml")
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: flex-auth-tests
`, r.Root, r.Addr)
	if err := os.WriteFile(r.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.Stop)
	return r
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (r *Registry) start() {
	r.t.Helper()
	r.stderr = &bytes.Buffer{}
	r.cmd = exec.Command(r.bin, "serve", r.config)
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start the registry: %v", err)
	}
	r.exited = make(chan struct{})
	go func() {
		r.cmd.Wait()
		close(r.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-r.exited:
			r.t.Fatalf("the registry exited at start-up: %s", r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the registry did not answer GET /v2/ within 30s: %v", err)
		}
	}
}

// Stop stops the registry (it keeps its storage).
func (r *Registry) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// Restart starts the registry again after Stop, on the same address with
// the same storage.
func (r *Registry) Restart() {
	r.t.Helper()
	if r.cmd != nil {
		r.t.Fatal("the registry is running")
	}
	r.start()
}

// BlobPath returns the file the registry keeps a blob's bytes in, for
// tests that alter stored content.
func (r *Registry) BlobPath(digest string) string {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || len(hex) < 2 {
		panic("testregistry: not a digest: " + digest)
	}
	return filepath.Join(r.Root, "docker", "registry", "v2", "blobs", algo, hex[:2], hex, "data")
}
