package e2e

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A fileServer is net/http's file server over HTTPS, with a certificate
// of a test CA, counting requests. It sends Last-Modified, not ETag.
type fileServer struct {
	URL      string
	Dir      string
	ln       net.Listener
	srv      *http.Server
	requests atomic.Int64
	heads    atomic.Int64
}

func newFileServer(t *testing.T, p *pki) *fileServer {
	t.Helper()
	fs := &fileServer{Dir: t.TempDir()}
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	fs.ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	fs.URL = "https://" + fs.ln.Addr().String()
	files := http.FileServer(http.Dir(fs.Dir))
	fs.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.requests.Add(1)
		if r.Method == http.MethodHead {
			fs.heads.Add(1)
		}
		files.ServeHTTP(w, r)
	})}
	go fs.srv.Serve(fs.ln)
	t.Cleanup(func() { fs.srv.Close() })
	return fs
}

// put writes a file atomically, dated a minute ago so that its
// Last-Modified can be asked with, as a deploy a while back would be.
func (fs *fileServer) put(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join(fs.Dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(tmp, old, old)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestServeFromURLs serves a registry and a policy from an HTTPS file
// server (trusted through SSL_CERT_FILE), follows their changes with
// conditional requests, keeps the last good pair through a bad file and
// a server that is down, and feeds a second replica that serves the
// first's GET /v1/registry (ETag, If-None-Match).
func TestServeFromURLs(t *testing.T) {
	skipShort(t)
	t.Parallel()
	p := newPKI(t, "files")
	files := newFileServer(t, p)
	fixture := loadFixture(t)
	policy := readFile(t, fixturePolicy)
	files.put(t, "registry.json", fixture.Canonical())
	files.put(t, "policy_package.md", policy)

	a := newServer(t)
	a.Env = []string{"SSL_CERT_FILE=" + p.CA}
	a.start(t, "serve", "--addr", "127.0.0.1:0", "--registry", files.URL+"/registry.json", "--policy", files.URL+"/policy_package.md",
		"--poll", testPoll.String(), "--reload-timeout", testReloadTimeout.String(), "--log", a.Log)
	h := a.health()
	if h["status"] != "ok" || str(h, "registry.digest") != fixture.Digest || str(h, "source.kind") != "http" ||
		str(h, "source.publication.registry.location") != files.URL+"/registry.json" || str(h, "source.publication.policy.last_modified") == "" {
		t.Fatalf("/healthz: %v", h)
	}
	// Unchanged: a HEAD per document and poll (the file server sends no
	// ETag).
	a.waitFor("two polls", func() bool { return files.heads.Load() >= 4 })

	// A second replica serves the first's registry, with the same policy
	// from the files.
	b := newServer(t)
	writeFile(t, b.Policy, policy)
	b.start(t, "serve", "--addr", "127.0.0.1:0", "--registry", a.URL+"/v1/registry", "--policy", b.Policy,
		"--poll", testPoll.String(), "--log", b.Log)
	if h := b.health(); str(h, "registry.digest") != fixture.Digest || str(h, "source.publication.registry.etag") != `"`+fixture.Digest+`"` {
		t.Fatalf("the chained replica: %v", h)
	}

	updated := withActor(fixture, "atm-from-the-file-server")
	files.put(t, "registry.json", updated.Canonical())
	start := time.Now()
	a.waitFor("the updated registry is served", func() bool { return str(a.health(), "registry.digest") == updated.Digest })
	b.waitFor("the chained replica follows", func() bool { return str(b.health(), "registry.digest") == updated.Digest })
	if took := time.Since(start); took > 2*testPoll+followSlack {
		t.Errorf("both replicas served the update %s after it was written, want within two polls and %s", took, followSlack)
	}

	// A file that is not a registry: refused, the last good one serves.
	files.put(t, "registry.json", []byte("<html>maintenance</html>"))
	a.waitFor("degraded by the bad file", func() bool {
		h := a.health()
		return h["status"] == "degraded" && strings.Contains(str(h, "reload.last_error"), files.URL+"/registry.json: line 1, column 1")
	})
	if got := str(a.health(), "registry.digest"); got != updated.Digest {
		t.Errorf("serving %s with a bad file, want %s", got, updated.Digest)
	}
	// The server down.
	files.put(t, "registry.json", updated.Canonical())
	a.waitFor("healthy again", func() bool { return a.health()["status"] == "ok" })
	files.srv.Close()
	a.waitFor("degraded by the server down", func() bool {
		h := a.health()
		return h["status"] == "degraded" && strings.Contains(str(h, "reload.last_error"), "connection refused")
	})
	if d := a.check(map[string]any{"subject": bridge, "resource": bridge, "context": map[string]any{"ttl_hours": 24}}).JSON(t); d["registry_digest"] != updated.Digest {
		t.Errorf("a decision while the server is down: %v", d)
	}
	t.Logf("files: %d requests, %d of them HEADs", files.requests.Load(), files.heads.Load())
}
