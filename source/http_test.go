package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/publication"
)

// docServer serves documents over HTTPS with an ETag (their SHA-256), as
// object stores and web servers do, and answers If-None-Match with 304.
// A fault, when set, answers instead.
type docServer struct {
	*httptest.Server
	mu       sync.Mutex
	docs     map[string][]byte
	requests atomic.Int64
	fault    func(w http.ResponseWriter, r *http.Request) bool
}

func newDocServer(t *testing.T) *docServer {
	t.Helper()
	s := &docServer{docs: map[string][]byte{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	reg, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	pol, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenPolicy)
	s.set("/registry.json", reg)
	s.set("/policy_package.md", pol)
	return s
}

func (s *docServer) set(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[path] = data
}

func (s *docServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	data, ok := s.docs[r.URL.Path]
	fault := s.fault
	s.mu.Unlock()
	if fault != nil && fault(w, r) {
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(data)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(data)
}

func (s *docServer) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *docServer) remote(t *testing.T) *HTTP {
	t.Helper()
	h, err := NewHTTP(HTTPConfig{Registry: s.URL + "/registry.json", Policy: s.URL + "/policy_package.md", Client: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHTTPConditional serves the pair at two URLs and, while nothing
// changes, costs one conditional request per document and poll.
func TestHTTPConditional(t *testing.T) {
	s := newDocServer(t)
	h := s.remote(t)
	u := mustUpdate(t, h, false)
	info := u.Publication.(HTTPInfo)
	if u.Snapshot == nil || u.Package == nil || info.Registry.ETag == "" || info.Policy.SHA256 == "" {
		t.Fatalf("first update: %+v", info)
	}
	u.Served()
	for i := 0; i < 3; i++ {
		before := s.requests.Load()
		if u, err := fetch(t, h, false); u != nil || err != nil {
			t.Fatalf("poll %d: got %v, %v; want nothing new", i, u, err)
		}
		if n := s.requests.Load() - before; n != 2 {
			t.Errorf("poll %d sent %d requests, want 2 (one conditional GET per document)", i, n)
		}
	}
	pol, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenPolicy)
	s.set("/policy_package.md", append(pol, "\n<!-- v2 -->\n"...))
	u = mustUpdate(t, h, false)
	if u.Package.Digest() == info.Policy.SHA256 {
		t.Error("the policy did not change")
	}
}

// TestHTTPLastModified follows a server that sends Last-Modified and no
// ETag (net/http's file server) with one HEAD per poll, and sees every
// change: one to a file dated earlier than the one it replaces, and one
// within the second the document was fetched.
func TestHTTPLastModified(t *testing.T) {
	dir := t.TempDir()
	reg, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	pol, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenPolicy)
	regPath, polPath := filepath.Join(dir, "registry.json"), filepath.Join(dir, "policy_package.md")
	hourAgo := time.Now().Add(-time.Hour)
	for path, data := range map[string][]byte{regPath: reg, polPath: pol} {
		os.WriteFile(path, data, 0o644)
		os.Chtimes(path, hourAgo, hourAgo)
	}
	var heads, gets atomic.Int64
	// date, when set, is the Date the server answers with, so that "within
	// the second the document was fetched" does not depend on when the
	// test happens to run.
	var date atomic.Pointer[time.Time]
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
		} else {
			gets.Add(1)
		}
		if d := date.Load(); d != nil {
			w.Header().Set("Date", d.UTC().Format(http.TimeFormat))
		}
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPConfig{Registry: srv.URL + "/registry.json", Policy: srv.URL + "/policy_package.md", Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, h, false).Served()
	gets.Store(0)
	if u, err := fetch(t, h, false); u != nil || err != nil {
		t.Fatalf("poll: got %v, %v; want nothing new", u, err)
	}
	if heads.Load() != 2 || gets.Load() != 0 {
		t.Errorf("an unchanged poll sent %d HEADs and %d GETs, want 2 HEADs", heads.Load(), gets.Load())
	}
	// Replaced by a file dated a day earlier (a copy that kept its time).
	dayAgo := time.Now().Add(-24 * time.Hour)
	os.WriteFile(polPath, append(bytes.Clone(pol), "\n<!-- v2 -->\n"...), 0o644)
	os.Chtimes(polPath, dayAgo, dayAgo)
	mustUpdate(t, h, false).Served()
	// Changed now, fetched within that second, and changed again within
	// it at the same length.
	now := time.Now().Truncate(time.Second)
	os.WriteFile(polPath, append(bytes.Clone(pol), "\n<!-- v3 -->\n"...), 0o644)
	os.Chtimes(polPath, now, now)
	fetched := now.Add(500 * time.Millisecond)
	date.Store(&fetched)
	mustUpdate(t, h, false).Served()
	os.WriteFile(polPath, append(bytes.Clone(pol), "\n<!-- v4 -->\n"...), 0o644)
	os.Chtimes(polPath, now, now)
	u := mustUpdate(t, h, false)
	if want := sha256.Sum256(append(bytes.Clone(pol), "\n<!-- v4 -->\n"...)); u.Package.Digest() != "sha256:"+hex.EncodeToString(want[:]) {
		t.Errorf("serving policy %s, want v4", u.Package.Digest())
	}
}

// TestHTTPFaults: what the server answers is refused or failed, the
// error names the URL without its credentials, and a refused document is
// not fetched whole again until it changes.
func TestHTTPFaults(t *testing.T) {
	reg, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	tests := []struct {
		name    string
		fault   func(w http.ResponseWriter, r *http.Request) bool
		refused bool
		want    string
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}, false, "500 Internal Server Error"},
		{"truncated", func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, ".json") {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(reg)))
			w.Write(reg[:len(reg)/2])
			return true
		}, false, "unexpected EOF"},
		{"too large", func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, ".md") {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(publication.MaxPolicyBytes+1))
			w.WriteHeader(200)
			return true
		}, true, "4194305 bytes; the limit is 4194304"},
		{"too large, no length", func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, ".md") {
				return false
			}
			w.(http.Flusher).Flush()
			w.Write(make([]byte, publication.MaxPolicyBytes+10))
			return true
		}, true, "more than 4194304 bytes"},
		{"not a registry", func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, ".json") {
				return false
			}
			w.Write([]byte("<html>sign in</html>"))
			return true
		}, true, "registry.json?xxxxx: line 1, column 1: invalid character"},
		{"redirect to http", func(w http.ResponseWriter, r *http.Request) bool {
			http.Redirect(w, r, "http://127.0.0.1:1/x?token=secret", http.StatusFound)
			return true
		}, false, "refused a redirect from https to http://127.0.0.1:1/x?xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDocServer(t)
			s.setFault(tt.fault)
			u := withUserinfo(s, "user:pw@")
			h, err := NewHTTP(HTTPConfig{Registry: u + "/registry.json?sig=abc", Policy: u + "/policy_package.md", Client: &http.Client{Transport: s.Client().Transport, CheckRedirect: noDowngrade}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = fetch(t, h, false)
			switch {
			case err == nil:
				t.Fatalf("no error; want one containing %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			case IsRefused(err) != tt.refused:
				t.Errorf("IsRefused(%v) = %v, want %v", err, IsRefused(err), tt.refused)
			case strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "sig=abc") || strings.Contains(err.Error(), "secret"):
				t.Errorf("%v shows a credential", err)
			}
			// Once the server is mended, the pair is served.
			s.setFault(nil)
			mustUpdate(t, h, false)
		})
	}
}

// withUserinfo returns the server's URL with userinfo in it.
func withUserinfo(s *docServer, userinfo string) string {
	return strings.Replace(s.URL, "https://", "https://"+userinfo, 1)
}

// TestHTTPRefusedOnce: a document that does not parse is parsed once; the
// next polls are conditional requests answered 304, and keep the error.
func TestHTTPRefusedOnce(t *testing.T) {
	s := newDocServer(t)
	reg, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	s.set("/registry.json", append([]byte("{"), reg...))
	h := s.remote(t)
	_, first := fetch(t, h, false)
	if !IsRefused(first) {
		t.Fatalf("got %v, want a refusal", first)
	}
	before := s.requests.Load()
	if _, err := fetch(t, h, false); err == nil || err.Error() != first.Error() {
		t.Errorf("again: got %v, want %v", err, first)
	}
	if n := s.requests.Load() - before; n != 2 {
		t.Errorf("%d requests, want 2 conditional ones", n)
	}
	s.set("/registry.json", reg)
	mustUpdate(t, h, false)
}

// TestHTTPWithFile serves a policy URL with a registry file, read again
// only when the file changes.
func TestHTTPWithFile(t *testing.T) {
	s := newDocServer(t)
	reg, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	path := filepath.Join(t.TempDir(), "registry.json")
	os.WriteFile(path, reg, 0o644)
	h, err := NewHTTP(HTTPConfig{Registry: path, Policy: s.URL + "/policy_package.md", Client: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	u := mustUpdate(t, h, false)
	if u.RegistryName != path {
		t.Errorf("registry named %q, want %q", u.RegistryName, path)
	}
	u.Served()
	if u, err := fetch(t, h, false); u != nil || err != nil {
		t.Fatalf("poll: got %v, %v; want nothing new", u, err)
	}
	// An atomic replacement with the same bytes: read again (a new
	// inode), found to be what is served.
	tmp := path + ".new"
	os.WriteFile(tmp, reg, 0o644)
	os.Rename(tmp, path)
	if u, err := fetch(t, h, false); u != nil || err != nil {
		t.Errorf("the same bytes again: got %v, %v; want nothing new", u, err)
	}
	// Other bytes (the same content, reformatted) are another document.
	os.WriteFile(tmp, append(reg, '\n'), 0o644)
	os.Rename(tmp, path)
	if u, err := fetch(t, h, false); err != nil || u == nil {
		t.Errorf("after the file changed: got %v, %v; want an update", u, err)
	}
	os.Remove(path)
	if _, err := fetch(t, h, false); err == nil || IsRefused(err) {
		t.Errorf("file gone: got %v, want a failure", err)
	}
	if _, err := NewHTTP(HTTPConfig{Registry: path, Policy: path}); err == nil {
		t.Error("NewHTTP without a URL: no error")
	}
}
