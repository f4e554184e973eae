package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/registry"
)

// flexAuth is the binary under test, built once by TestMain.
var flexAuth string

// waitTimeout bounds every wait for a condition: start-up, a reload
// becoming visible, an exit. Generous, because a loaded CI machine is slow
// (ten replicas given a third of one core took 10s to follow a
// publication), and it costs a passing run nothing: a wait ends as soon
// as its condition holds.
const waitTimeout = 30 * time.Second

const (
	fixtureRegistry = "../examples/ops-warden/production_registry_snapshot.json"
	fixturePolicy   = "../examples/ops-warden/policy_package.md"
	bridge          = "agt-state-hub-bridge"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "flex-auth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	flexAuth = filepath.Join(dir, "flex-auth")
	build := exec.Command("go", "build", "-o", flexAuth, "github.com/coulomb/flex-auth/cmd/flex-auth")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/flex-auth: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("contract tests start the real binary; skipped with -short")
	}
}

// output collects what a process writes and wakes waiters on each write,
// so tests wait on what was written rather than sleep.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// snapshot returns the text so far and a channel closed at the next write.
func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String(), o.changed
}

// waitOutput waits until o contains substr, or exited is closed, or time
// runs out; it reports whether o contains substr.
func waitOutput(o *output, substr string, exited <-chan struct{}) bool {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		text, changed := o.snapshot()
		if strings.Contains(text, substr) {
			return true
		}
		select {
		case <-changed:
		case <-exited:
			return strings.Contains(o.String(), substr)
		case <-deadline.C:
			return false
		}
	}
}

// A server is one `flex-auth serve` process.
type server struct {
	t        *testing.T
	URL      string
	Dir      string // the test's temporary directory
	Registry string // the registry file it serves (a copy the test may rewrite)
	Policy   string
	Log      string // the decision log file
	cmd      *exec.Cmd
	stdout   *output
	// Stdout, when set, is the process's standard output instead of
	// stdout: a pipe the test reads, or does not.
	Stdout *os.File
	// Env is added to the process's environment.
	Env     []string
	stderr  *output
	exited  chan struct{}
	waitErr error
}

var listenRE = regexp.MustCompile(`listening on (\S+?:\d+)`)

// newServer copies the example registry and policy into a temporary
// directory, where the test may rewrite them; it starts nothing.
func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{
		Dir:      dir,
		Registry: filepath.Join(dir, "registry.json"),
		Policy:   filepath.Join(dir, "policy_package.md"),
		Log:      filepath.Join(dir, "decisions.jsonl"),
	}
	copyFile(t, fixtureRegistry, s.Registry)
	copyFile(t, fixturePolicy, s.Policy)
	return s
}

// serveArgs returns the serve command line for s's files on a free port.
func (s *server) serveArgs(extra ...string) []string {
	return append([]string{"serve", "--addr", "127.0.0.1:0", "--registry", s.Registry, "--policy", s.Policy, "--log", s.Log}, extra...)
}

// startServer serves copies of the example registry and policy on a free
// port with a decision log in a temporary directory; extra flags are
// appended.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := newServer(t)
	s.start(t, s.serveArgs(extra...)...)
	return s
}

// startReloading starts a server as startServer does, that reloads on
// trigger: "watch", a change to its files (--watch), or "sighup". The
// function returned sends the SIGHUP, or does nothing under --watch.
func startReloading(t *testing.T, trigger string) (*server, func()) {
	t.Helper()
	if trigger == "watch" {
		return startServer(t, "--watch"), func() {}
	}
	s := startServer(t)
	return s, func() { s.signal(sighup) }
}

// start runs flex-auth with args and waits until it listens and answers
// /healthz.
func (s *server) start(t *testing.T, args ...string) {
	t.Helper()
	s.t = t
	s.launch(t, args...)
	m := s.waitStderr(listenRE)
	if m == nil {
		t.Fatalf("flex-auth %s: no %q line on stderr within %s; stderr:\n%s", strings.Join(args, " "), listenRE, waitTimeout, s.stderr)
	}
	s.URL = "http://" + m[1]
	s.waitFor("GET /healthz answers 200", func() bool {
		resp, err := http.Get(s.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// launch starts the process without waiting for it to listen.
func (s *server) launch(t *testing.T, args ...string) {
	t.Helper()
	s.t = t
	s.stdout, s.stderr = newOutput(), newOutput()
	s.exited = make(chan struct{})
	s.cmd = exec.Command(flexAuth, args...)
	if s.Env != nil {
		s.cmd.Env = append(os.Environ(), s.Env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if s.Stdout != nil {
		s.cmd.Stdout = s.Stdout
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("flex-auth stderr:\n%s", s.stderr)
		}
	})
}

// waitStderr waits until stderr matches re and returns the submatches, or
// nil when the process exits or time runs out first.
func (s *server) waitStderr(re *regexp.Regexp) []string {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		text, changed := s.stderr.snapshot()
		if m := re.FindStringSubmatch(text); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-s.exited:
			if m := re.FindStringSubmatch(s.stderr.String()); m != nil {
				return m
			}
			return nil
		case <-deadline.C:
			return nil
		}
	}
}

// waitFor polls cond every 10ms until it holds, failing the test after
// waitTimeout or when the process exits.
func (s *server) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-s.exited:
			s.t.Fatalf("waiting until %s: flex-auth exited: %v", what, s.waitErr)
		case <-deadline.C:
			s.t.Fatalf("waiting until %s: not within %s", what, waitTimeout)
		}
	}
}

// signal sends sig to the server process.
func (s *server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (s *server) wait() int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(waitTimeout):
		s.t.Fatalf("flex-auth did not exit within %s; stderr:\n%s", waitTimeout, s.stderr)
	}
	var ee *exec.ExitError
	switch {
	case s.waitErr == nil:
		return 0
	case errors.As(s.waitErr, &ee):
		return ee.ExitCode()
	}
	s.t.Fatalf("wait: %v", s.waitErr)
	return -1
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}

// writeFile replaces path atomically, the way generate and a ConfigMap
// update do: a reload never sees half a file.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// loadFixture returns the example registry snapshot.
func loadFixture(t *testing.T) *registry.Snapshot {
	t.Helper()
	s, err := registry.Load(fixtureRegistry)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withBridgeTTL returns a sealed copy of s in which the bridge's default
// and maximum TTL are hours.
func withBridgeTTL(t *testing.T, s *registry.Snapshot, hours int) *registry.Snapshot {
	t.Helper()
	actors := make([]registry.Actor, len(s.Actors))
	copy(actors, s.Actors)
	for i := range actors {
		actors[i].Subjects = append([]string(nil), actors[i].Subjects...)
		if actors[i].Name == bridge {
			actors[i].DefaultTTLHours, actors[i].MaxTTLHours = hours, hours
		}
	}
	return registry.New(s.Source, s.PolicyPackage, actors)
}

// Signals the tests send.
const (
	sighup  = syscall.SIGHUP
	sigterm = syscall.SIGTERM
	sigint  = syscall.SIGINT
	sigkill = syscall.SIGKILL
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// A reply is one HTTP answer, read completely.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value, failing the test when it is
// not one JSON document.
func (r *reply) JSON(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %q", r.Status, err, r.Body)
	}
	if dec.More() {
		t.Fatalf("answer %d has data after the JSON object: %q", r.Status, r.Body)
	}
	return v
}

// do sends one request and reads the whole answer.
func (s *server) do(method, path, contentType string, body []byte, header ...string) *reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return &reply{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// check posts a decision request given as a Go value.
func (s *server) check(req any, header ...string) *reply {
	s.t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.do("POST", "/v1/check", "application/json", body, header...)
}

// health fetches /healthz.
func (s *server) health() map[string]any {
	s.t.Helper()
	r := s.do("GET", "/healthz", "", nil)
	if r.Status != 200 {
		s.t.Fatalf("GET /healthz: got %d, want 200: %s", r.Status, r.Body)
	}
	return r.JSON(s.t)
}

// path returns the value at a dotted path in a decoded JSON object, or nil.
func path(v map[string]any, p string) any {
	var cur any = v
	for _, k := range strings.Split(p, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// str returns the string at p, or "" when there is none.
func str(v map[string]any, p string) string {
	s, _ := path(v, p).(string)
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
